"""The batcher, run against both implementations: the Cython extension and the pure twin."""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
import random
import struct
import subprocess
import sys
import textwrap
import types
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from poller import batching

ROOT = Path(__file__).resolve().parents[2]
SHARD = "shardId-000000000007"
REGION = "eu-west-1"
STREAM_ARN = "arn:aws:kinesis:eu-west-1:111122223333:stream/orders"
ROLE_ARN = "arn:aws:iam::111122223333:role/my-fn-role"


def _extension() -> types.ModuleType | None:
    try:
        return importlib.import_module("poller._fastbatch")
    except ImportError:
        return None


EXTENSION = _extension()


@pytest.fixture(params=["python", "cython"])
def impl(request: pytest.FixtureRequest) -> Any:
    if request.param == "python":
        return batching.pure
    if EXTENSION is None:
        pytest.skip("poller._fastbatch is not built (python setup.py build_ext --inplace)")
    return EXTENSION


def all_impls() -> list[Any]:
    if EXTENSION is None:
        pytest.skip("poller._fastbatch is not built (python setup.py build_ext --inplace)")
    return [batching.pure, EXTENSION]


def raw_record(seq: str = "49650000000000000000000000000000000000000000000000000001",
               key: str = "user-42", data: str = "eyJ0eXBlIjoiY2xpY2siLCJ1c2VyIjo0Mn0=",
               arrival: float = 1700000000.123) -> dict[str, Any]:
    return {"SequenceNumber": seq, "ApproximateArrivalTimestamp": arrival, "Data": data,
            "PartitionKey": key, "EncryptionType": "NONE"}


def expected_event(raw: dict[str, Any], shard: str = SHARD, region: str = REGION,
                   stream_arn: str = STREAM_ARN, role_arn: str = ROLE_ARN) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": raw["PartitionKey"],
            "sequenceNumber": raw["SequenceNumber"],
            "data": raw["Data"],
            "approximateArrivalTimestamp": raw["ApproximateArrivalTimestamp"],
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{raw['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encoder(impl: Any, shard: str = SHARD, region: str = REGION, stream_arn: str = STREAM_ARN,
            role_arn: str = ROLE_ARN) -> Any:
    return impl.KinesisEncoder(shard, region, stream_arn, role_arn)


def random_key(rng: random.Random) -> str:
    pool = ['"', "\\", "\x00", "\x1f", "\x7f", "\n", "\t", "é", "ß", "中", "😀", "\u2028",
            "/", "'", "<", " ", "a", "Z", "0", "-", "_", ":"]
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 24)))


def random_raw(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    seq = rng.getrandbits(180)
    for _ in range(n):
        seq += rng.randint(1, 10**20)
        arrival: float = (rng.randint(1_500_000_000, 1_800_000_000) if rng.random() < 0.3
                          else round(rng.uniform(1.5e9, 1.8e9), rng.choice([0, 1, 2, 3, 6])))
        key = random_key(rng) if rng.random() < 0.5 else f"user-{rng.randint(0, 999)}"
        data = base64.b64encode(rng.randbytes(rng.randint(0, 300))).decode()
        out.append(raw_record(str(seq), key, data, arrival))
    return out


# --- rendering ----------------------------------------------------------------------------

TRICKY_KEYS = [
    "user-42",
    "",
    'with "quotes"',
    "back\\slash",
    "ctl\x00\x01\x08\t\n\r\x1f end",
    "del\x7f",
    "caf\u00e9 \u4e2d\u6587",
    "emoji \U0001f600\U0001f680",
    "line\u2028sep\u2029",
    "</script>'&",
    "x" * 256,
]


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_fragment_matches_json_dumps_for_partition_keys(impl: Any, key: str) -> None:
    raw = raw_record(key=key)
    [record] = encoder(impl).encode([raw])
    assert record.fragment == dumps(expected_event(raw))


@pytest.mark.parametrize("arrival", [
    1700000000.123, 1700000000, 1545084650.987, 0, 0.0, 1700000000.5, 1.5e-07, 1e22,
    1700000000.1234567, 2**70,
])
def test_fragment_writes_timestamp_like_json_dumps(impl: Any, arrival: float) -> None:
    raw = raw_record(arrival=arrival)
    [record] = encoder(impl).encode([raw])
    assert record.fragment == dumps(expected_event(raw))
    assert record.arrival == float(arrival)
    assert type(record.arrival) is float


def awkward_timestamps(rng: random.Random) -> list[float]:
    values: list[float] = [
        0.001, 0.5, 0.9995, 0.999, 1.0, 1.0005, 1.001, 9.999, 10.0, 99.99, 100.5, 999.999,
        2**40 - 0.001, 2**40 - 0.0005, float(2**40), 2**40 + 0.5, 2**40 + 0.001,
        1e15 + 0.125, 1e16, 9007199254740993.0, -0.0, -1700000000.123, 5e-324, 0.1 + 0.2,
        1700000000.0005, 1700000000.9999, 1699999999.9995,
    ]
    for _ in range(4000):
        values.append(round(rng.uniform(1.4e9, 1.9e9), 3))
        values.append(rng.randrange(1000, 2**40 * 1000) / 1000)
        values.append(rng.randrange(1, 10**6) / rng.choice([10, 100, 1000, 10**4, 10**7]))
        values.append(rng.uniform(1.4e9, 1.9e9))
        x = struct.unpack("<d", rng.randbytes(8))[0]
        values.append(x if math.isfinite(x) else 1.5)
    return values


def test_float_timestamps_render_like_repr_across_ranges(impl: Any) -> None:
    stamps = awkward_timestamps(random.Random(42))
    raws = [raw_record(seq=str(i + 1), arrival=x) for i, x in enumerate(stamps)]
    for raw, record in zip(raws, encoder(impl).encode(raws), strict=True):
        assert record.fragment == dumps(expected_event(raw)), raw["ApproximateArrivalTimestamp"]


def test_position_parses_sequence_numbers_of_any_length(impl: Any) -> None:
    rng = random.Random(8)
    seqs = ["0", "7", "007", "18446744073709551615", "18446744073709551616", "9" * 76, "9" * 77,
            "1" + "0" * 80, "1_000", "+12", " 12", "\u0661\u0662"]
    for length in range(1, 90):
        seqs.append("".join(rng.choice("0123456789") for _ in range(length)))
        seqs.append(str(rng.randrange(10 ** (length - 1), 10**length)))
    raws = [raw_record(seq=seq) for seq in seqs]
    for seq, raw, record in zip(seqs, raws, encoder(impl).encode(raws), strict=True):
        assert record.position == int(seq), seq
        assert record.seq == seq
        assert record.fragment == dumps(expected_event(raw))
    with pytest.raises(ValueError):
        encoder(impl).encode([raw_record(seq="12a")])


def test_record_fields(impl: Any) -> None:
    raw = raw_record(seq="49650000000000000000000000000000000000000000000000000123",
                     key="k1", arrival=1700000000)
    [record] = encoder(impl).encode([raw])
    assert record.position == 49650000000000000000000000000000000000000000000000000123
    assert record.seq == raw["SequenceNumber"]
    assert record.key == "k1"
    assert record.arrival == 1700000000.0
    assert record.done is False


def test_data_is_copied_as_given_not_decoded(impl: Any) -> None:
    # Non-canonical base64 (no padding, trailing bits set) would change on decode/re-encode.
    for data in ["QR", "QQ", "QUJD", "", "AAEC////", "QUJ="]:
        [record] = encoder(impl).encode([raw_record(data=data)])
        assert b'"data":"' + data.encode() + b'"' in record.fragment
        assert json.loads(record.fragment)["kinesis"]["data"] == data


def test_escapes_static_parts_and_odd_data(impl: Any) -> None:
    raw = raw_record(seq="12", data='not"base64\\\n')
    enc = encoder(impl, shard='sh"ard\\\u00e9', region="r\x01", stream_arn="arn:\U0001f600",
                  role_arn='role"')
    [record] = enc.encode([raw])
    assert record.fragment == dumps(expected_event(
        raw, shard='sh"ard\\\u00e9', region="r\x01", stream_arn="arn:\U0001f600",
        role_arn='role"'))


def test_field_order_is_aws_order(impl: Any) -> None:
    [record] = encoder(impl).encode([raw_record()])
    event = json.loads(record.fragment)
    assert list(event) == ["kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                           "invokeIdentityArn", "awsRegion", "eventSourceARN"]
    assert list(event["kinesis"]) == ["kinesisSchemaVersion", "partitionKey", "sequenceNumber",
                                      "data", "approximateArrivalTimestamp"]


def test_encode_accepts_any_sequence_and_keeps_order(impl: Any) -> None:
    raws = random_raw(random.Random(3), 20)
    enc = encoder(impl)
    from_list = [r.fragment for r in enc.encode(raws)]
    assert [r.fragment for r in enc.encode(tuple(raws))] == from_list
    assert from_list == [dumps(expected_event(r)) for r in raws]
    assert enc.encode([]) == []


def test_missing_field_raises_key_error(impl: Any) -> None:
    raw = raw_record()
    del raw["PartitionKey"]
    with pytest.raises(KeyError):
        encoder(impl).encode([raw])


def test_implementations_are_byte_identical_on_random_input() -> None:
    py, cy = all_impls()
    rng = random.Random(20240601)
    raws = random_raw(rng, 400)
    py_records = encoder(py).encode(raws)
    cy_records = encoder(cy).encode(raws)
    for raw, p, c in zip(raws, py_records, cy_records, strict=True):
        assert p.fragment == c.fragment == dumps(expected_event(raw))
        assert (p.position, p.seq, p.key, p.arrival) == (c.position, c.seq, c.key, c.arrival)
    tail = b',"window":{"start":"2024-01-01T00:00:00Z"}'
    for _ in range(50):
        start = rng.randint(-len(raws) - 5, len(raws) + 5)
        end = rng.choice([None, rng.randint(-len(raws) - 5, len(raws) + 5)])
        assert (py.build_payload(py_records, start, end, tail)
                == cy.build_payload(cy_records, start, end, tail))


# --- payloads -----------------------------------------------------------------------------

def test_payload_parses_to_expected_structure(impl: Any) -> None:
    raws = random_raw(random.Random(7), 30)
    records = encoder(impl).encode(raws)
    payload = impl.build_payload(records)
    assert json.loads(payload) == {"Records": [expected_event(r) for r in raws]}
    assert payload == dumps({"Records": [expected_event(r) for r in raws]})


def test_payload_with_tail_and_empty(impl: Any) -> None:
    records = encoder(impl).encode([raw_record()])
    tail = b',"window":{"start":"a","end":"b"},"state":{},"isFinalInvokeForWindow":false'
    payload = impl.build_payload(records, 0, None, tail)
    assert json.loads(payload) == {
        "Records": [expected_event(raw_record())], "window": {"start": "a", "end": "b"},
        "state": {}, "isFinalInvokeForWindow": False}
    assert impl.build_payload([]) == b'{"Records":[]}'
    assert impl.build_payload(records, 1, 1, b',"x":1') == b'{"Records":[],"x":1}'
    assert impl.ENVELOPE_BYTES == len(b'{"Records":[]}')
    assert impl.MAX_PAYLOAD_BYTES == 6 * 1024 * 1024


def test_payload_size_equals_len_for_all_subranges(impl: Any) -> None:
    records = encoder(impl).encode(random_raw(random.Random(11), 12))
    n = len(records)
    for tail in (b"", b',"state":{"n":1}'):
        for start in range(-n - 2, n + 3):
            for end in [None, *range(-n - 2, n + 3)]:
                payload = impl.build_payload(records, start, end, tail)
                assert impl.payload_size(records, start, end, len(tail)) == len(payload)
                assert payload == impl.build_payload(records[start:end], 0, None, tail)


def test_subrange_rebuild_equals_fresh_batch(impl: Any) -> None:
    raws = random_raw(random.Random(5), 16)
    records = encoder(impl).encode(raws)
    for start, end in [(0, 8), (8, 16), (0, 4), (4, 8), (5, 6), (15, 16), (3, 11)]:
        fresh = encoder(impl).encode(raws[start:end])
        assert impl.build_payload(records, start, end) == impl.build_payload(fresh)
        assert impl.build_payload(records, start, end) == impl.build_payload(
            list(records[start:end]))


def test_build_payload_accepts_tuple_and_deque(impl: Any) -> None:
    records = encoder(impl).encode(random_raw(random.Random(9), 5))
    expected = impl.build_payload(records, 1, 4)
    assert impl.build_payload(tuple(records), 1, 4) == expected
    assert impl.build_payload(deque(records), 1, 4) == expected
    assert impl.payload_size(deque(records), 1, 4) == len(expected)


# --- take_batch ---------------------------------------------------------------------------

def make_records(impl: Any, sizes: list[int]) -> list[Any]:
    """Records whose fragments have exactly the given lengths."""
    return [impl.Record(i, str(i), f"k{i}", 1700000000.0, b"x" * size)
            for i, size in enumerate(sizes)]


def test_take_batch_closes_at_max_count(impl: Any) -> None:
    records = make_records(impl, [10] * 7)
    buffer = deque(records)
    assert impl.take_batch(buffer, 3, impl.MAX_PAYLOAD_BYTES) == records[:3]
    assert impl.take_batch(buffer, 3, impl.MAX_PAYLOAD_BYTES) == records[3:6]
    assert impl.take_batch(buffer, 3, impl.MAX_PAYLOAD_BYTES) == records[6:]
    assert impl.take_batch(buffer, 3, impl.MAX_PAYLOAD_BYTES) == []
    assert not buffer


def test_take_batch_exact_byte_boundary(impl: Any) -> None:
    records = make_records(impl, [100, 200, 300, 50])
    exact = impl.payload_size(records, 0, 3)
    assert exact == impl.ENVELOPE_BYTES + 600 + 2

    buffer = deque(records)
    batch = impl.take_batch(buffer, 100, exact)
    assert batch == records[:3]
    assert len(impl.build_payload(batch)) == exact
    assert list(buffer) == records[3:]

    buffer = deque(records)
    assert impl.take_batch(buffer, 100, exact - 1) == records[:2]
    assert list(buffer) == records[2:]


def test_take_batch_counts_tail_bytes(impl: Any) -> None:
    records = make_records(impl, [100, 100, 100])
    tail = b',"state":{"count":12345}'
    limit = impl.payload_size(records, 0, 2, len(tail))
    buffer = deque(records)
    batch = impl.take_batch(buffer, 100, limit, len(tail))
    assert batch == records[:2]
    assert len(impl.build_payload(batch, 0, None, tail)) == limit
    buffer = deque(records)
    assert impl.take_batch(buffer, 100, limit - 1, len(tail)) == records[:1]


def test_take_batch_takes_oversize_record_alone(impl: Any) -> None:
    records = make_records(impl, [5000, 10, 10])
    buffer = deque(records)
    assert impl.take_batch(buffer, 100, 1000) == records[:1]
    assert list(buffer) == records[1:]
    assert impl.take_batch(buffer, 100, 1000) == records[1:]

    records = make_records(impl, [10, 5000, 10])
    buffer = deque(records)
    assert impl.take_batch(buffer, 100, 1000) == records[:1]
    assert impl.take_batch(buffer, 100, 1000) == records[1:2]
    assert impl.take_batch(buffer, 100, 1000) == records[2:]


def test_take_batch_keeps_order_and_drops_nothing(impl: Any) -> None:
    rng = random.Random(13)
    records = make_records(impl, [rng.randint(1, 400) for _ in range(500)])
    buffer = deque(records)
    taken: list[Any] = []
    while buffer:
        max_count, max_bytes = rng.randint(1, 20), rng.randint(50, 3000)
        batch = impl.take_batch(buffer, max_count, max_bytes)
        assert 1 <= len(batch) <= max_count
        assert len(batch) == 1 or impl.payload_size(batch) <= max_bytes
        if buffer and len(batch) < max_count:
            assert impl.payload_size([*batch, buffer[0]]) > max_bytes
        taken.extend(batch)
    assert taken == records


def test_take_batch_rejects_zero_count(impl: Any) -> None:
    with pytest.raises(ValueError):
        impl.take_batch(deque(make_records(impl, [1])), 0, 100)


# --- Record -------------------------------------------------------------------------------

def test_record_constructor_and_done_is_writable(impl: Any) -> None:
    record = impl.Record(7, "7", "k", 1700000000, b"{}")
    assert (record.position, record.seq, record.key, record.arrival, record.fragment) == (
        7, "7", "k", 1700000000.0, b"{}")
    assert record.done is False
    record.done = True
    assert record.done is True
    assert "done=True" in repr(record)


# --- the switch ---------------------------------------------------------------------------

def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "POLLER_NO_EXTENSIONS"}
    environ.update(env)
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-W", "default", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env=environ, cwd=ROOT, timeout=60,
                          check=True)


def test_no_extensions_env_forces_twin() -> None:
    result = run_python("""
        from poller import batching, records
        print(batching.IMPLEMENTATION, records.Record is batching.PyRecord,
              batching.build_payload is batching.pure.build_payload)
    """, POLLER_NO_EXTENSIONS="1")
    assert result.stdout.split() == ["python", "True", "True"]
    assert "Warning" not in result.stderr


def test_extension_is_chosen_when_built() -> None:
    if EXTENSION is None:
        pytest.skip("poller._fastbatch is not built (python setup.py build_ext --inplace)")
    result = run_python("""
        from poller import batching, records, _fastbatch
        print(batching.IMPLEMENTATION, records.Record is _fastbatch.Record,
              batching.take_batch is _fastbatch.take_batch)
    """)
    assert result.stdout.split() == ["cython", "True", "True"]
    assert "Warning" not in result.stderr


def test_missing_extension_warns_once_and_falls_back() -> None:
    result = run_python("""
        import sys, warnings
        sys.modules["poller._fastbatch"] = None  # makes the import fail like a missing build
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from poller import batching
            import poller.records
        print(batching.IMPLEMENTATION, len(caught), caught[0].category.__name__)
    """)
    assert result.stdout.split() == ["python", "1", "RuntimeWarning"]


# --- misuse fails cleanly -----------------------------------------------------------------

def test_none_values_raise_type_error(impl: Any) -> None:
    for field in ("PartitionKey", "SequenceNumber", "Data"):
        raw = raw_record()
        raw[field] = None
        with pytest.raises(TypeError):
            encoder(impl).encode([raw])
    record = impl.Record(1, "1", "k", 1.0, b"{}")
    record.fragment = None
    with pytest.raises(TypeError):
        impl.build_payload([record])
    with pytest.raises(TypeError):
        impl.payload_size([record])
    buffer = deque([record])
    with pytest.raises(TypeError):
        impl.take_batch(buffer, 10, 1000)
    assert list(buffer) == [record]


class Mapping(dict[str, Any]):
    """A dict subclass: takes the generic lookup path."""


def test_mixed_key_objects_and_mapping_types(impl: Any) -> None:
    parsed = json.loads(json.dumps({"Records": random_raw(random.Random(4), 6)}))["Records"]
    literal = random_raw(random.Random(6), 3)
    mixed = [literal[0], parsed[0], parsed[1], Mapping(parsed[2]), literal[1], parsed[3],
             {k: parsed[4][k] for k in reversed(list(parsed[4]))}, literal[2]]
    records = encoder(impl).encode(mixed)
    assert [r.fragment for r in records] == [dumps(expected_event(r)) for r in mixed]
    missing = dict(parsed[5])
    del missing["Data"]
    with pytest.raises(KeyError):
        encoder(impl).encode([parsed[0], missing])


# --- DynamoDB Streams and SQS encoders ------------------------------------------------------------

DDB_ARN = "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders/stream/2023-11-14T22:13:20.000"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:111122223333:jobs"


def ddb_raw(seq: str = "1405400000000002063282832", name: str = "MODIFY",
            created: float = 1700000000.0, ttl: bool = False,
            view: str = "NEW_AND_OLD_IMAGES") -> dict[str, Any]:
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": {"pk": {"S": "order#1"}},
        "SequenceNumber": seq, "SizeBytes": 84, "StreamViewType": view,
    }
    if name != "REMOVE":
        ddb["NewImage"] = {"pk": {"S": "order#1"}, "status": {"S": "SHIPPED"}, "qty": {"N": "2"}}
    if name != "INSERT":
        ddb["OldImage"] = {"pk": {"S": "order#1"}, "status": {"S": "NEW"}, "qty": {"N": "2"}}
    item: dict[str, Any] = {"eventID": "7de3041dd709b024af6f29e4fa13d34c", "eventName": name,
                            "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                            "awsRegion": "eu-west-1", "dynamodb": ddb}
    if ttl:
        item["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    return item


def test_dynamodb_event_is_aws_shape_and_order(impl: Any) -> None:
    [rec] = impl.DynamoDBEncoder(REGION, DDB_ARN).encode([ddb_raw(created=1700000000.9)])
    event = json.loads(rec.fragment)
    assert list(event) == ["eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
                           "dynamodb", "eventSourceARN"]
    assert list(event["dynamodb"]) == ["ApproximateCreationDateTime", "Keys", "NewImage",
                                       "OldImage", "SequenceNumber", "SizeBytes",
                                       "StreamViewType"]
    assert event["eventVersion"] == "1.1" and event["eventSource"] == "aws:dynamodb"
    assert event["dynamodb"]["ApproximateCreationDateTime"] == 1700000000  # whole seconds
    assert event["dynamodb"]["NewImage"]["qty"] == {"N": "2"}
    assert event["eventSourceARN"] == DDB_ARN and event["awsRegion"] == REGION
    assert (rec.position, rec.seq) == (1405400000000002063282832, "1405400000000002063282832")
    assert rec.arrival == 1700000000.9 and json.loads(rec.key) == {"pk": {"S": "order#1"}}


def test_dynamodb_ttl_delete_has_user_identity(impl: Any) -> None:
    [rec] = impl.DynamoDBEncoder(REGION, DDB_ARN).encode([ddb_raw(name="REMOVE", ttl=True)])
    event = json.loads(rec.fragment)
    assert "NewImage" not in event["dynamodb"]
    assert event["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert list(event)[-2:] == ["userIdentity", "eventSourceARN"]


def test_dynamodb_keys_only_view(impl: Any) -> None:
    raw = ddb_raw(view="KEYS_ONLY")
    del raw["dynamodb"]["NewImage"], raw["dynamodb"]["OldImage"]
    [rec] = impl.DynamoDBEncoder(REGION, DDB_ARN).encode([raw])
    assert list(json.loads(rec.fragment)["dynamodb"]) == [
        "ApproximateCreationDateTime", "Keys", "SequenceNumber", "SizeBytes", "StreamViewType"]


def sqs_raw(mid: str = "059f36b4-87a3-44ab-83d2-661975830a7d", body: str = "Test message.",
            group: str | None = None, attrs: bool = False) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "MessageId": mid, "ReceiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "MD5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3", "Body": body,
        "Attributes": {"SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateReceiveCount": "1",
                       "SentTimestamp": "1545082649183",
                       "ApproximateFirstReceiveTimestamp": "1545082649185"},
    }
    if group is not None:
        msg["Attributes"].update({"MessageGroupId": group, "SequenceNumber": "18849496460467696128",
                                  "MessageDeduplicationId": "1"})
    if attrs:
        msg["MD5OfMessageAttributes"] = "00484c68...59e48f06"
        msg["MessageAttributes"] = {"myAttr": {"StringValue": "v", "DataType": "String"},
                                    "bin": {"BinaryValue": "AQ==", "DataType": "Binary"}}
    return msg


def test_sqs_event_matches_aws_example(impl: Any) -> None:
    [rec] = impl.SqsEncoder("us-east-2", "arn:aws:sqs:us-east-2:123456789012:my-queue").encode(
        [sqs_raw()])
    assert rec.fragment == (
        b'{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d","receiptHandle":'
        b'"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a","body":"Test message.","attributes":'
        b'{"ApproximateReceiveCount":"1","SentTimestamp":"1545082649183","SenderId":'
        b'"AIDAIENQZJOLO23YVJ4VO","ApproximateFirstReceiveTimestamp":"1545082649185"},'
        b'"messageAttributes":{},"md5OfBody":"e4e68fb7bd0e697a0ae8f1bb342846b3",'
        b'"eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-2:123456789012:my-queue",'
        b'"awsRegion":"us-east-2"}')
    assert (rec.seq, rec.key, rec.position) == ("059f36b4-87a3-44ab-83d2-661975830a7d",
                                                "059f36b4-87a3-44ab-83d2-661975830a7d", 1)
    assert rec.arrival == 1545082649.183


def test_sqs_fifo_attributes_and_message_attributes(impl: Any) -> None:
    enc = impl.SqsEncoder(REGION, QUEUE_ARN)
    first, rec = enc.encode([sqs_raw(), sqs_raw(mid="m2", group="g1", attrs=True, body="é\n")])
    event = json.loads(rec.fragment)
    assert list(event["attributes"]) == [
        "ApproximateReceiveCount", "SentTimestamp", "SequenceNumber", "MessageGroupId",
        "SenderId", "MessageDeduplicationId", "ApproximateFirstReceiveTimestamp"]
    assert event["messageAttributes"] == {
        "myAttr": {"stringValue": "v", "stringListValues": [], "binaryListValues": [],
                   "dataType": "String"},
        "bin": {"binaryValue": "AQ==", "stringListValues": [], "binaryListValues": [],
                "dataType": "Binary"}}
    assert event["md5OfMessageAttributes"] == "00484c68...59e48f06"
    assert event["body"] == "é\n"
    assert (rec.key, rec.position) == ("g1", first.position + 1)


def test_new_encoders_are_byte_identical_across_implementations() -> None:
    rng = random.Random(7)
    impls = all_impls()
    ddb = [ddb_raw(seq=str(rng.randrange(10**20)), name=rng.choice(["INSERT", "MODIFY", "REMOVE"]),
                   created=rng.choice([1700000000, 1700000000.5]), ttl=rng.random() < 0.3)
           for _ in range(50)]
    sqs = [sqs_raw(mid=f"m{i}", body="".join(chr(rng.randrange(1, 0x3000)) for _ in range(20)),
                   group=rng.choice([None, "g"]), attrs=rng.random() < 0.5) for i in range(50)]
    out = [([r.fragment for r in m.DynamoDBEncoder(REGION, DDB_ARN).encode(ddb)],
            [r.fragment for r in m.SqsEncoder(REGION, QUEUE_ARN).encode(sqs)]) for m in impls]
    assert out[0] == out[1]
    for fragment in out[0][1]:
        json.loads(fragment)
