"""Kafka event records straight from aiokafka's record batches (``poller.kafka_records`` and the
``poller.sources.kafka_fetch`` hook), run against both implementations: the fragments equal
``KafkaEncoder``'s for the same records, and the hook keeps aiokafka's record selection."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from poller import kafka_records
from poller.batching import KafkaEncoder
from poller.invokers.local import parse_event
from poller.sources import kafka_fetch
from tests.unit.test_batching_kafka import expected, random_records, record

TP = TopicPartition("t.o_p-ic", 3)
HEAD = b'{"topic":"t.o_p-ic","partition":3'


def _fast() -> Callable[..., Any]:
    try:
        from poller._fastkafka import encode_records
    except ImportError:
        pytest.skip("poller._fastkafka is not built (python setup.py build_ext --inplace)")
    return encode_records  # type: ignore[no-any-return]


@pytest.fixture(params=["python", "cython"])
def encode(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return kafka_records.py_encode_records if request.param == "python" else _fast()


def test_fragments_equal_the_kafka_encoders_for_every_field_shape(encode: Any) -> None:
    rng = random.Random(8)
    records = random_records(rng, 400)
    reference = KafkaEncoder(TP.topic, TP.partition).encode(records)
    got = encode(HEAD, records, 0)
    assert [r.fragment for r in got] == [r.fragment for r in reference]
    assert [(r.position, r.seq, r.key, r.arrival, r.done) for r in got] == [
        (r.position, r.seq, r.key, r.arrival, r.done) for r in reference]
    assert [json.loads(r.fragment) for r in got] == [expected(r) for r in records]


def test_base64_padding_of_every_length(encode: Any) -> None:
    records = [record(offset=i, key=bytes(range(i)), value=bytes(range(255, 255 - i, -1)),
                      headers=(), topic=TP.topic, partition=TP.partition) for i in range(8)]
    got = encode(HEAD, records, 0)
    assert [json.loads(r.fragment) for r in got] == [expected(r) for r in records]


def test_records_before_the_fetch_position_are_skipped(encode: Any) -> None:
    records = [record(offset=o, topic=TP.topic, partition=TP.partition) for o in range(10, 20)]
    assert [r.position for r in encode(HEAD, records, 15)] == list(range(15, 20))
    assert encode(HEAD, records, 20) == []


def _batch(base_offset: int, n: int, *, control: bool = False,
           transactional: bool = False, producer_id: int = -1) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=transactional, producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1, base_sequence=0 if producer_id >= 0 else -1,
        batch_size=1 << 20)
    for i in range(n):
        if control:  # an abort/commit marker: key = version 0, type 0 (abort)
            builder.append(i, timestamp=1_700_000_000_000, key=b"\x00\x00\x00\x00",
                           value=b"\x00\x00\x00\x00\x00\x00", headers=[])
        else:
            builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i,
                           value=b"v%d" % (base_offset + i), headers=[("h", b"\x01")])
    buf = bytearray(builder.build())
    buf[0:8] = base_offset.to_bytes(8, "big")  # baseOffset (not covered by the CRC)
    if control:
        attributes = int.from_bytes(buf[21:23], "big") | 0x20
        buf[21:23] = attributes.to_bytes(2, "big")
        from aiokafka.record.util import calc_crc32c
        buf[17:21] = calc_crc32c(bytes(buf[21:])).to_bytes(4, "big")
    return bytes(buf)


def _drain(cls: Any, data: bytes, key_deserializer: Any, fetch_offset: int,
           isolation: int, aborted: list[tuple[int, int]] | None = None) -> tuple[list[Any], int]:
    parts = cls(TP, MemoryRecords(data), aborted, fetch_offset, key_deserializer, None, True,
                isolation)
    return list(parts), parts.next_fetch_offset


@pytest.mark.parametrize("isolation", [fetcher.READ_UNCOMMITTED, fetcher.READ_COMMITTED])
def test_the_hook_selects_the_records_aiokafka_selects(isolation: int) -> None:
    data = (_batch(0, 5) + _batch(5, 3, transactional=True, producer_id=7)
            + _batch(8, 1, control=True, transactional=True, producer_id=7) + _batch(9, 4))
    aborted = [(7, 5)]
    plain, plain_next = _drain(fetcher.PartitionRecords.__mro__[1]
                               if fetcher.PartitionRecords is kafka_fetch.RawPartitionRecords
                               else fetcher.PartitionRecords,
                               data, None, 2, isolation, list(aborted))
    raw, raw_next = _drain(kafka_fetch.RawPartitionRecords, data, kafka_fetch.RawEncoding(), 2,
                           isolation, list(aborted))
    flat = [r for batch in raw for r in batch]
    assert all(type(batch) is list for batch in raw)
    assert [r.position for r in flat] == [m.offset for m in plain]
    expected_offsets = ([2, 3, 4, 9, 10, 11, 12] if isolation == fetcher.READ_COMMITTED
                        else [2, 3, 4, 5, 6, 7, 9, 10, 11, 12])  # control batch 8 never shown
    assert [r.position for r in flat] == expected_offsets
    assert raw_next == plain_next == 13
    reference = KafkaEncoder(TP.topic, TP.partition).encode(plain)
    assert [r.fragment for r in flat] == [r.fragment for r in reference]


def test_without_a_raw_encoding_the_hook_is_aiokafkas_class() -> None:
    data = _batch(0, 3)
    raw, _ = _drain(kafka_fetch.RawPartitionRecords, data, None, 0, fetcher.READ_UNCOMMITTED)
    assert [(m.offset, m.key, m.value) for m in raw] == [(0, b"k0", b"v0"), (1, b"k1", b"v1"),
                                                         (2, b"k2", b"v2")]
    assert kafka_fetch.installed and fetcher.PartitionRecords is kafka_fetch.RawPartitionRecords


@pytest.mark.parametrize("doc", [
    b'{"a":[1,2.5,-3e-7,"\\u00e9\\ud83d\\ude00",null,true,false],"b":{"c":{}}}',
    b'{"big":123456789012345678901234567890,"neg":-9223372036854775809}',
    b'[18446744073709551616, 9223372036854775807]',
    b'  -99999999999999999999',
    b'{"s":"1234567890123456789012","f":1e400}',
    b'{\n  "a" : -12345678901234567890123,\n  "b": [1, 123456789012345678901]\n}',
    b'{"a":[123456789012345678901]}',
    b'{"id":"shardId-000000000000:49650000000000000000000000000000000000000000000000000001"}',
    b'{"nan":NaN,"inf":-Infinity}',
    b'{"lone":"\\ud800"}',
    b'{"dup":1,"dup":2}',
    b'[]',
])
def test_parse_event_equals_json_loads(doc: bytes) -> None:
    assert parse_event(doc) == json.loads(doc)
    assert repr(parse_event(doc)) == repr(json.loads(doc))


def test_long_integers_are_found_and_sequence_numbers_are_not_taken_for_them() -> None:
    from poller.batching import long_integer as _long_integer

    kinesis = (b'{"Records":[{"kinesis":{"sequenceNumber":"4965000000000000000000000000000000000'
               b'0000000000000000001","approximateArrivalTimestamp":1700000000.123},"eventID":'
               b'"shardId-000000000000:49650000000000000000000000000000000000000000000000000001"'
               b',"offset":922337203685477580}]}')
    assert not _long_integer(kinesis)  # the fast parser reads the poller's own events
    for doc in (b'{"a":12345678901234567890}', b'{"a" : -1234567890123456789}',
                b'[0,1234567890123456789]', b'[1234567890123456789]', b'1234567890123456789'):
        assert _long_integer(doc), doc


LONG_INTEGER_CASES = [
    (b'{"a":12345678901234567890}', True),
    (b'{"a" : -1234567890123456789}', True),
    (b'[0,1234567890123456789]', True),
    (b'1234567890123456789', True),
    (b'{"s":"1234567890123456789"}', False),  # digits inside a string
    (b'{"s":"q\\"1234567890123456789"}', False),  # after an escaped quote: still inside
    (b'{"s":"q\\\\","n":1234567890123456789}', True),  # escaped backslash closes it
    (b'{"s":"\\\\\\"1234567890123456789"}', False),
    (b'{"n":123456789012345678}', False),  # 18 digits: orjson reads it as json.loads does
    (b'', False),
]


@pytest.mark.parametrize(("doc", "expected"), LONG_INTEGER_CASES)
def test_long_integer_scanners_agree(doc: bytes, expected: bool) -> None:
    from poller.batching import extension, py_long_integer
    from poller.batching import long_integer as _long_integer

    assert _long_integer(doc) is expected
    assert py_long_integer(doc) is expected
    if extension is not None:  # the Cython scan is the one parse_event uses
        assert _long_integer is extension.long_integer


def test_parse_event_rejects_what_json_loads_rejects() -> None:
    for bad in (b'{"a":', b"\xff", b"{'a':1}"):
        with pytest.raises(ValueError):
            parse_event(bad)


def test_a_record_without_a_timestamp_type_says_so(encode: Any) -> None:
    r = record(offset=3, topic=TP.topic, partition=TP.partition)._replace(
        timestamp_type=None)  # type: ignore[arg-type]  # message format v0 has none
    (got,) = encode(HEAD, [r], 0)
    assert json.loads(got.fragment)["timestampType"] == "NO_TIMESTAMP_TYPE"
