"""FilterCriteria views of SQS messages and Kafka records (queues-kafka-api.md §4.3): what a
pattern sees, JSON vs plain-text data, and decoding at most once, only when read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from poller.filtering import ShapedFilters
from poller.sources.kafka import KafkaView
from poller.sources.sqs import SqsView


def sqs_message(body: str, **extra: Any) -> dict[str, Any]:
    msg = {"MessageId": "m-1", "ReceiptHandle": "rh-1", "Body": body, "MD5OfBody": "abc",
           "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                          "MessageGroupId": "g-1"},
           "MessageAttributes": {"color": {"StringValue": "red", "DataType": "String"}}}
    msg.update(extra)
    return msg


def sqs_keeps(pattern: dict[str, Any], msg: dict[str, Any]) -> bool:
    return ShapedFilters([json.dumps(pattern)], ("body",)).matches(SqsView(msg))


JSON_BODY = '{"kind": "order", "n": 5, "items": [{"sku": "a"}]}'

SQS_CASES: list[tuple[dict[str, Any], str, bool]] = [
    # JSON body, object pattern: matched on the parsed JSON
    ({"body": {"kind": ["order"]}}, JSON_BODY, True),
    ({"body": {"kind": ["refund"]}}, JSON_BODY, False),
    ({"body": {"n": [{"numeric": [">", 3]}]}}, JSON_BODY, True),
    ({"body": {"items": {"sku": ["a"]}}}, JSON_BODY, True),
    # plain body, rule array: matched on the string
    ({"body": ["ping"]}, "ping", True),
    ({"body": [{"prefix": "pi"}]}, "ping", True),
    ({"body": [{"prefix": "x"}]}, "ping", False),
    ({"body": ["42"]}, "42", True),  # a JSON scalar is not an object: plain text
    # formats differ: dropped, even for rules that would hold on an absent field
    ({"body": ["ping"]}, '{"a": 1}', False),
    ({"body": [{"prefix": "{"}]}, '{"a": 1}', False),
    ({"body": {"kind": ["order"]}}, "order", False),
    ({"body": {"kind": [{"exists": False}]}}, "order", False),
    ({"body": {"kind": [{"exists": False}]}}, JSON_BODY, False),
    ({"body": {"other": [{"exists": False}]}}, JSON_BODY, True),
    ({"body": {"kind": ["order"]}}, "{not json", False),
    # no body key: the other keys only, whatever the body
    ({"messageId": ["m-1"]}, "anything", True),
    ({"attributes": {"MessageGroupId": ["g-1"]}}, JSON_BODY, True),
    ({"attributes": {"ApproximateReceiveCount": ["2"]}}, JSON_BODY, False),
    ({"messageAttributes": {"color": {"stringValue": ["red"]}}}, "x", True),
    ({"messageAttributes": {"color": {"dataType": ["Number"]}}}, "x", False),
    ({"md5OfBody": ["abc"], "receiptHandle": ["rh-1"]}, "x", True),
    ({"md5OfMessageAttributes": [{"exists": False}]}, "x", True),
    ({"eventSource": ["aws:sqs"]}, "x", False),  # added after filtering: not visible
]


@pytest.mark.parametrize(("pattern", "body", "expected"), SQS_CASES)
def test_sqs_view(pattern: dict[str, Any], body: str, expected: bool) -> None:
    assert sqs_keeps(pattern, sqs_message(body)) is expected


def test_sqs_filters_are_ored_across_body_formats() -> None:
    fs = ShapedFilters(['{"body": {"kind": ["order"]}}', '{"body": ["ping"]}'], ("body",))
    assert fs.matches(SqsView(sqs_message(JSON_BODY)))
    assert fs.matches(SqsView(sqs_message("ping")))
    assert not fs.matches(SqsView(sqs_message("pong")))


class CountingStr(str):
    decodes = 0

    def lstrip(self, chars: str | None = None) -> str:
        CountingStr.decodes += 1
        return str.lstrip(self, chars)


def test_sqs_body_parsed_once_and_only_when_read() -> None:
    fs = ShapedFilters(['{"body": {"kind": ["x"]}}', '{"body": ["y"]}',
                        '{"body": {"n": [1]}}'], ("body",))
    CountingStr.decodes = 0
    assert not fs.matches(SqsView(sqs_message(CountingStr(JSON_BODY))))
    assert CountingStr.decodes == 1
    meta = ShapedFilters(['{"messageId": ["nope"]}'], ("body",))
    assert not meta.matches(SqsView(sqs_message(CountingStr(JSON_BODY))))
    assert CountingStr.decodes == 1
    assert meta.reads == {"messageId"}


@dataclass
class ConsumerRecord:
    value: bytes | None
    key: bytes | None = b"k-1"
    topic: str = "orders"
    partition: int = 2
    offset: int = 17
    timestamp: int = 1700000000123
    timestamp_type: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=lambda: [("trace", b"ab")])


def kafka_keeps(pattern: dict[str, Any], record: ConsumerRecord) -> bool:
    return ShapedFilters([json.dumps(pattern)], ("key", "value")).matches(KafkaView(record))


JSON_VALUE = b'{"kind": "order", "n": 5}'

KAFKA_CASES: list[tuple[dict[str, Any], ConsumerRecord, bool]] = [
    ({"value": {"kind": ["order"]}}, ConsumerRecord(JSON_VALUE), True),
    ({"value": {"kind": ["refund"]}}, ConsumerRecord(JSON_VALUE), False),
    ({"value": ["ping"]}, ConsumerRecord(b"ping"), True),
    ({"value": ["pong"]}, ConsumerRecord(b"ping"), False),
    ({"key": ["k-1"]}, ConsumerRecord(JSON_VALUE), True),
    ({"key": {"id": [7]}}, ConsumerRecord(b"x", key=b'{"id": 7}'), True),
    # format mismatch or not UTF-8: the key's rules are skipped, the metadata rules decide
    ({"value": ["ping"], "partition": [2]}, ConsumerRecord(JSON_VALUE), True),
    ({"value": ["ping"], "partition": [3]}, ConsumerRecord(JSON_VALUE), False),
    ({"value": {"kind": ["x"]}, "topic": ["orders"]}, ConsumerRecord(b"plain"), True),
    ({"value": {"kind": ["x"]}, "topic": ["other"]}, ConsumerRecord(b"plain"), False),
    ({"value": ["x"], "offset": [17]}, ConsumerRecord(b"\xff\xfe"), True),
    ({"value": ["x"]}, ConsumerRecord(JSON_VALUE), True),  # nothing else to match on
    # metadata as delivered
    ({"timestamp": [1700000000123], "offset": [{"numeric": [">=", 17]}]},
     ConsumerRecord(b"v"), True),
    ({"timestampType": ["CREATE_TIME"]}, ConsumerRecord(b"v"), True),
    ({"timestampType": ["LOG_APPEND_TIME"]}, ConsumerRecord(b"v"), False),
    ({"headers": {"trace": [97]}}, ConsumerRecord(b"v"), True),
    ({"headers": {"trace": [120]}}, ConsumerRecord(b"v"), False),
    # no key: no key field; a tombstone's value is null
    ({"key": [{"exists": False}]}, ConsumerRecord(b"v", key=None), True),
    ({"key": ["k-1"]}, ConsumerRecord(b"v", key=None), False),
    ({"value": [None]}, ConsumerRecord(None), True),
    ({"eventSourceArn": [{"exists": True}]}, ConsumerRecord(b"v"), False),
]


@pytest.mark.parametrize(("pattern", "record", "expected"), KAFKA_CASES)
def test_kafka_view(pattern: dict[str, Any], record: ConsumerRecord, expected: bool) -> None:
    assert kafka_keeps(pattern, record) is expected


class CountingBytes(bytes):
    decodes = 0

    def decode(self, *args: Any, **kwargs: Any) -> str:
        CountingBytes.decodes += 1
        return bytes.decode(self, *args, **kwargs)


def test_kafka_value_decoded_once_and_only_when_read() -> None:
    fs = ShapedFilters(['{"value": {"kind": ["x"]}}', '{"value": ["y"], "topic": ["nope"]}',
                        '{"value": {"n": [1]}}'], ("key", "value"))
    CountingBytes.decodes = 0
    record = ConsumerRecord(CountingBytes(JSON_VALUE), key=CountingBytes(b"k"))
    assert not fs.matches(KafkaView(record))
    assert CountingBytes.decodes == 1  # the value, once; the key never
    meta = ShapedFilters(['{"partition": [9]}'], ("key", "value"))
    assert not meta.matches(KafkaView(record))
    assert CountingBytes.decodes == 1
