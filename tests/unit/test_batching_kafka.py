"""The Kafka encoder and the framed payload builder, run against both implementations."""

from __future__ import annotations

import base64
import json
import random
from typing import Any, NamedTuple

from tests.unit.test_batching import all_impls, impl  # noqa: F401  (fixture)


class ConsumerRecord(NamedTuple):
    """The attributes of aiokafka's ConsumerRecord that the encoder reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def record(offset: int = 15, key: bytes | None = b"recordKey", value: bytes | None = b'{"k":1}',
           headers: tuple[tuple[str, bytes | None], ...] = (("headerKey", b"headerValue"),),
           timestamp: int = 1545084650987, timestamp_type: int = 0,
           topic: str = "mytopic", partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, timestamp, timestamp_type, key, value,
                          headers)


def expected(r: ConsumerRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "topic": r.topic, "partition": r.partition, "offset": r.offset,
        "timestamp": r.timestamp,
        "timestampType": {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}.get(r.timestamp_type,
                                                                      "NO_TIMESTAMP_TYPE"),
    }
    if r.key is not None:
        doc["key"] = base64.b64encode(r.key).decode()
    doc["value"] = None if r.value is None else base64.b64encode(r.value).decode()
    doc["headers"] = [{name: None if data is None else list(data)} for name, data in r.headers]
    return doc


def random_records(rng: random.Random, n: int) -> list[ConsumerRecord]:
    out = []
    for i in range(n):
        key = None if rng.random() < 0.2 else rng.randbytes(rng.randrange(0, 20))
        value = None if rng.random() < 0.1 else rng.randbytes(rng.randrange(0, 300))
        headers = tuple((rng.choice(["h", "trace-id", 'q"u\\o\u00e9', "dup"]),
                         None if rng.random() < 0.1 else rng.randbytes(rng.randrange(0, 8)))
                        for _ in range(rng.randrange(0, 4)))
        out.append(record(offset=1000 + i, key=key, value=value, headers=headers,
                          timestamp=rng.randrange(0, 2**41), timestamp_type=rng.choice([0, 1, -1]),
                          topic="t.o_p-ic", partition=3))
    return out


def test_aws_example_record(impl: Any) -> None:  # noqa: F811
    [rec] = impl.KafkaEncoder("mytopic", 0).encode([record()])
    assert rec.fragment == (
        b'{"topic":"mytopic","partition":0,"offset":15,"timestamp":1545084650987,'
        b'"timestampType":"CREATE_TIME","key":"cmVjb3JkS2V5","value":"eyJrIjoxfQ==",'
        b'"headers":[{"headerKey":[104,101,97,100,101,114,86,97,108,117,101]}]}')
    assert (rec.position, rec.seq, rec.key, rec.arrival, rec.done) == (
        15, "15", "cmVjb3JkS2V5", 1545084650.987, False)


def test_no_key_tombstone_and_no_headers(impl: Any) -> None:  # noqa: F811
    [rec] = impl.KafkaEncoder("t", 2).encode([record(key=None, value=None, headers=(),
                                                     timestamp_type=1)])
    assert json.loads(rec.fragment) == {
        "topic": "t", "partition": 2, "offset": 15, "timestamp": 1545084650987,
        "timestampType": "LOG_APPEND_TIME", "value": None, "headers": []}
    assert rec.key == ""


def test_random_records_match_expected_and_implementations_agree() -> None:
    raws = random_records(random.Random(3), 200)
    outputs = []
    for module in all_impls():
        records = module.KafkaEncoder("t.o_p-ic", 3).encode(raws)
        for raw, rec in zip(raws, records, strict=True):
            assert json.loads(rec.fragment) == expected(raw)
            assert rec.fragment.isascii()
        outputs.append([r.fragment for r in records])
    assert outputs[0] == outputs[1]


def test_framed_payload_and_size(impl: Any) -> None:  # noqa: F811
    raws = random_records(random.Random(9), 10)
    records = impl.KafkaEncoder("t.o_p-ic", 3).encode(raws)
    head = b'{"eventSource":"aws:kafka","records":{"t.o_p-ic-3":['
    tail = b"]}}"
    n = len(records)
    for start in range(-n - 1, n + 2):
        for end in [None, *range(-n - 1, n + 2)]:
            payload = impl.build_framed(head, records, start, end, tail)
            assert len(payload) == impl.framed_size(records, start, end, len(head) + len(tail))
            assert json.loads(payload) == {"eventSource": "aws:kafka", "records": {
                "t.o_p-ic-3": [expected(r) for r in raws[start:end]]}}
    assert impl.build_framed(b"[", [], 0, None, b"]") == b"[]"
    assert impl.framed_size([], 0, None, 2) == 2
