"""Batch building: the pure-Python twin of ``poller._fastbatch`` and the switch between them.

The names a caller uses (``Record``, ``KinesisEncoder``, ``build_payload``, ``payload_size``,
``take_batch``, ``MAX_PAYLOAD_BYTES``, ``ENVELOPE_BYTES``) are bound to the Cython extension when
it imports, else to the twin below; ``IMPLEMENTATION`` says which ("cython" or "python").
``POLLER_NO_EXTENSIONS=1`` forces the twin. Both implementations produce byte-identical output;
``pure`` and ``extension`` keep each reachable so one test suite can run against both.

Shortest use::

    encoder = KinesisEncoder(shard_id, region, stream_arn, role_arn)
    buffer = collections.deque(encoder.encode(get_records_response["Records"]))
    batch = take_batch(buffer, max_count=100, max_bytes=MAX_PAYLOAD_BYTES)
    payload = build_payload(batch)
"""

from __future__ import annotations

import binascii
import json
import math
import os
import types
import warnings
from collections import deque
from collections.abc import Sequence
from datetime import UTC as _UTC
from datetime import datetime as _datetime
from json.encoder import encode_basestring_ascii as _json_str
from typing import TYPE_CHECKING, Any

__all__ = [
    "ENVELOPE_BYTES",
    "IMPLEMENTATION",
    "MAX_PAYLOAD_BYTES",
    "ActiveMqEncoder",
    "DynamoDBEncoder",
    "KafkaEncoder",
    "KinesisEncoder",
    "PyActiveMqEncoder",
    "PyDynamoDBEncoder",
    "PyKafkaEncoder",
    "PyKinesisEncoder",
    "PyRabbitMqEncoder",
    "PyRecord",
    "PySqsEncoder",
    "RabbitMqEncoder",
    "Record",
    "SqsEncoder",
    "build_framed",
    "build_payload",
    "extension",
    "framed_size",
    "java_date",
    "long_integer",
    "payload_size",
    "pure",
    "take_batch",
]

PY_MAX_PAYLOAD_BYTES = 6_291_456
_OPEN = b'{"Records":['
_CLOSE = b"]"
PY_ENVELOPE_BYTES = len(_OPEN) + len(_CLOSE) + len(b"}")

_HEAD = '{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":'
_SEQ = ',"sequenceNumber":'
_DATA = ',"data":'
_ARRIVAL = ',"approximateArrivalTimestamp":'


class PyRecord:
    """One source record, already rendered as its event JSON object (``fragment``)."""

    __slots__ = ("arrival", "done", "fragment", "key", "position", "seq")

    def __init__(self, position: int, seq: str, key: str, arrival: float,
                 fragment: bytes) -> None:
        self.position = position
        self.seq = seq
        self.key = key
        self.arrival = float(arrival)
        self.fragment = fragment
        self.done = False

    def __repr__(self) -> str:
        return (f"Record(position={self.position!r}, key={self.key!r}, "
                f"arrival={self.arrival!r}, size={len(self.fragment)}, done={self.done!r})")


def _json_number(value: Any) -> str:
    """The number exactly as ``json.dumps`` writes it."""
    kind = type(value)
    if (kind is float and math.isfinite(value)) or kind is int:
        return repr(value)
    return json.dumps(value)


class PyKinesisEncoder:
    """Renders Kinesis GetRecords records (the API's JSON, ``Data`` still base64) as Lambda
    Kinesis event records, in AWS's field order."""

    __slots__ = ("_event_id", "_tail")

    def __init__(self, shard_id: str, region: str, stream_arn: str,
                 invoke_identity_arn: str) -> None:
        # eventID is '"<shardId>:<seq>"': the escaped shard id without its closing quote, then
        # the escaped sequence number without its opening quote.
        self._event_id = ('},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":'
                          + _json_str(shard_id + ":")[:-1])
        self._tail = (',"eventName":"aws:kinesis:record","invokeIdentityArn":'
                      + _json_str(invoke_identity_arn) + ',"awsRegion":' + _json_str(region)
                      + ',"eventSourceARN":' + _json_str(stream_arn) + "}")

    def encode(self, raw: Sequence[dict[str, Any]]) -> list[PyRecord]:
        event_id, tail = self._event_id, self._tail
        out: list[PyRecord] = []
        append = out.append
        for item in raw:
            seq: str = item["SequenceNumber"]
            key: str = item["PartitionKey"]
            arrival = item["ApproximateArrivalTimestamp"]
            seq_json = _json_str(seq)
            fragment = "".join((
                _HEAD, _json_str(key), _SEQ, seq_json, _DATA, _json_str(item["Data"]), _ARRIVAL,
                _json_number(arrival), event_id, seq_json[1:], tail,
            )).encode("ascii")
            append(PyRecord(int(seq), seq, key, arrival, fragment))
        return out


_TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}


def _timestamp_type(kind: int) -> str:
    return '"' + _TIMESTAMP_TYPES.get(kind, "NO_TIMESTAMP_TYPE") + '"'


def _byte_array(value: bytes | None) -> str:
    if value is None:
        return "null"
    return "[" + ",".join([str(b) for b in value]) + "]"


class PyKafkaEncoder:
    """Renders Kafka consumer records (objects with ``topic``, ``partition``, ``offset``,
    ``timestamp`` (ms), ``timestamp_type`` (0 create, 1 log append), ``key``, ``value`` (bytes or
    None) and ``headers`` (``(name, bytes)`` pairs), as aiokafka's ConsumerRecord has) as the
    record objects of a Lambda Kafka event, in AWS's field order. A record without a key has no
    ``key`` field; a record without a value (tombstone) has ``"value":null``."""

    __slots__ = ("_head",)

    def __init__(self, topic: str, partition: int) -> None:
        self._head = '{"topic":' + _json_str(topic) + ',"partition":' + str(int(partition))

    def encode(self, raw: Sequence[Any]) -> list[PyRecord]:
        head = self._head
        out: list[PyRecord] = []
        append = out.append
        for item in raw:
            offset = int(item.offset)
            timestamp = int(item.timestamp)
            key = item.key
            value = item.value
            key_b64 = "" if key is None else binascii.b2a_base64(key, newline=False).decode()
            parts = [head, ',"offset":', str(offset), ',"timestamp":', str(timestamp),
                     ',"timestampType":', _timestamp_type(item.timestamp_type)]
            if key is not None:
                parts += (',"key":"', key_b64, '"')
            if value is None:
                parts.append(',"value":null')
            else:
                parts += (',"value":"', binascii.b2a_base64(value, newline=False).decode(), '"')
            parts.append(',"headers":[')
            for i, (name, data) in enumerate(item.headers or ()):
                parts += ("," if i else "", "{", _json_str(name), ":", _byte_array(data), "}")
            parts.append("]}")
            append(PyRecord(offset, str(offset), key_b64, timestamp / 1000.0,
                            "".join(parts).encode("ascii")))
        return out


def py_framed_size(records: Sequence[PyRecord], start: int = 0, end: int | None = None,
                   fixed_bytes: int = 0) -> int:
    """Size of ``build_framed(head, records, start, end, tail)`` with len(head + tail) ==
    ``fixed_bytes``."""
    span = _bounds(len(records), start, end)
    total = fixed_bytes + max(len(span) - 1, 0)
    for i in span:
        total += len(records[i].fragment)
    return total


def py_build_framed(head: bytes, records: Sequence[PyRecord], start: int = 0,
                    end: int | None = None, tail: bytes = b"") -> bytes:
    """``head``, the fragments of records[start:end] joined by commas, ``tail``."""
    span = _bounds(len(records), start, end)
    body = b",".join([records[i].fragment for i in span])
    return b"".join((head, body, tail))
_compact = json.JSONEncoder(separators=(",", ":")).encode

# AWS's order of the attributes in an SQS event record; others follow in the API's order
SQS_ATTRIBUTE_ORDER = ("ApproximateReceiveCount", "SentTimestamp", "SequenceNumber",
                       "MessageGroupId", "SenderId", "MessageDeduplicationId",
                       "ApproximateFirstReceiveTimestamp")


class PyDynamoDBEncoder:
    """Renders DynamoDB Streams GetRecords records (the API's JSON) as Lambda DynamoDB event
    records, in AWS's field order (eventVersion 1.1, creation time in whole seconds)."""

    __slots__ = ("_middle", "_tail")

    def __init__(self, region: str, stream_arn: str) -> None:
        self._middle = (',"eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":'
                        + _json_str(region) + ',"dynamodb":{')
        self._tail = ',"eventSourceARN":' + _json_str(stream_arn) + "}"

    def encode(self, raw: Sequence[dict[str, Any]]) -> list[PyRecord]:
        out: list[PyRecord] = []
        for item in raw:
            ddb = item["dynamodb"]
            seq: str = ddb["SequenceNumber"]
            created = ddb.get("ApproximateCreationDateTime")
            keys = _compact(ddb.get("Keys") or {})
            inner: list[str] = []
            if created is not None:
                inner.append('"ApproximateCreationDateTime":' + str(math.floor(created)))
            inner.append('"Keys":' + keys)
            for name in ("NewImage", "OldImage"):
                image = ddb.get(name)
                if image is not None:
                    inner.append(f'"{name}":' + _compact(image))
            inner.append('"SequenceNumber":' + _json_str(seq))
            size = ddb.get("SizeBytes")
            if size is not None:
                inner.append('"SizeBytes":' + _json_number(size))
            view = ddb.get("StreamViewType")
            if view is not None:
                inner.append('"StreamViewType":' + _json_str(view))
            identity = item.get("userIdentity")
            user = "" if identity is None else (
                ',"userIdentity":{"type":' + _json_str(identity.get("Type", ""))
                + ',"principalId":' + _json_str(identity.get("PrincipalId", "")) + "}")
            fragment = "".join((
                '{"eventID":', _json_str(item["eventID"]), ',"eventName":',
                _json_str(item["eventName"]), self._middle, ",".join(inner), "}", user,
                self._tail)).encode("ascii")
            out.append(PyRecord(int(seq), seq, keys, float(created or 0), fragment))
        return out


def _sqs_message_attributes(attrs: dict[str, Any]) -> str:
    parts = []
    for name, value in attrs.items():
        fields = []
        if "StringValue" in value:
            fields.append('"stringValue":' + _json_str(value["StringValue"]))
        if "BinaryValue" in value:
            fields.append('"binaryValue":' + _json_str(value["BinaryValue"]))
        fields.append('"stringListValues":' + _compact(value.get("StringListValues") or []))
        fields.append('"binaryListValues":' + _compact(value.get("BinaryListValues") or []))
        fields.append('"dataType":' + _json_str(value.get("DataType", "String")))
        parts.append(_json_str(name) + ":{" + ",".join(fields) + "}")
    return "{" + ",".join(parts) + "}"


def _sqs_attributes(attrs: dict[str, Any]) -> str:
    parts = [_json_str(k) + ":" + _json_str(str(attrs[k]))
             for k in SQS_ATTRIBUTE_ORDER if k in attrs]
    parts += [_json_str(k) + ":" + _json_str(str(v))
              for k, v in attrs.items() if k not in SQS_ATTRIBUTE_ORDER]
    return "{" + ",".join(parts) + "}"


class PySqsEncoder:
    """Renders SQS ReceiveMessage messages (the JSON protocol's shape) as Lambda SQS event
    records, in AWS's field order. ``position`` counts messages in receive order, ``seq`` is
    the messageId (the itemIdentifier), ``key`` the MessageGroupId (FIFO) or messageId."""

    __slots__ = ("_next", "_tail")

    def __init__(self, region: str, queue_arn: str) -> None:
        self._tail = (',"eventSource":"aws:sqs","eventSourceARN":' + _json_str(queue_arn)
                      + ',"awsRegion":' + _json_str(region) + "}")
        self._next = 0

    def encode(self, raw: Sequence[dict[str, Any]]) -> list[PyRecord]:
        out: list[PyRecord] = []
        for msg in raw:
            attrs = msg.get("Attributes") or {}
            mid: str = msg["MessageId"]
            md5_attrs = msg.get("MD5OfMessageAttributes")
            fragment = "".join((
                '{"messageId":', _json_str(mid), ',"receiptHandle":',
                _json_str(msg["ReceiptHandle"]), ',"body":', _json_str(msg["Body"]),
                ',"attributes":', _sqs_attributes(attrs), ',"messageAttributes":',
                _sqs_message_attributes(msg.get("MessageAttributes") or {}),
                ',"md5OfBody":', _json_str(msg["MD5OfBody"]),
                "" if md5_attrs is None else ',"md5OfMessageAttributes":' + _json_str(md5_attrs),
                self._tail)).encode("ascii")
            sent = attrs.get("SentTimestamp")
            self._next += 1
            out.append(PyRecord(self._next, mid, attrs.get("MessageGroupId") or mid,
                                int(sent) / 1000.0 if sent else 0.0, fragment))
        return out


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def py_java_date(when: Any) -> str:
    """A datetime as the JSON string Lambda's Java poller writes for a Date (Gson's default,
    en_US, UTC): ``"Jan 1, 1970, 12:33:41 AM"``; naive datetimes are taken as UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(_UTC)
    hour = when.hour % 12 or 12
    return (f'"{_MONTHS[when.month - 1]} {when.day}, {when.year}, {hour}:{when.minute:02d}:'
            f'{when.second:02d} {"AM" if when.hour < 12 else "PM"}"')


def _java_bytes(data: bytes) -> str:
    """Java's signed bytes, as Gson writes a byte[]."""
    return "[" + ",".join([str(b - 256 if b > 127 else b) for b in data]) + "]"


def _rmq_value(value: Any) -> str:
    """An AMQP field value as Lambda writes it: strings as ``{"bytes":[...]}`` (the Java
    client's LongString), numbers and booleans as they are, tables and arrays nested."""
    kind = type(value)
    if kind is str:
        return '{"bytes":' + _java_bytes(value.encode("utf-8")) + "}"
    if kind is bytes or kind is bytearray:
        return '{"bytes":' + _java_bytes(value) + "}"
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return _json_number(value)
    if isinstance(value, dict):
        return "{" + ",".join([_json_str(str(k)) + ":" + _rmq_value(v)
                               for k, v in value.items()]) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join([_rmq_value(v) for v in value]) + "]"
    if isinstance(value, _datetime):
        return py_java_date(value)
    return str(value)  # Decimal: a JSON number


def _rmq_str(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


class PyRabbitMqEncoder:
    """Renders RabbitMQ deliveries (objects with ``body``, ``redelivered``, ``delivery_tag`` and
    ``header.properties`` (pamqp's Basic.Properties), as aiormq's DeliveredMessage has) as the
    messages of a Lambda ``aws:rmq`` event, in AWS's field order. ``position`` and ``seq`` are
    the delivery tag."""

    __slots__ = ()

    def encode(self, raw: Sequence[Any]) -> list[PyRecord]:
        out: list[PyRecord] = []
        for item in raw:
            props = item.header.properties
            body: bytes = item.body
            headers = props.headers
            stamp = props.timestamp
            mode, priority = props.delivery_mode, props.priority
            fragment = "".join((
                '{"basicProperties":{"contentType":', _rmq_str(props.content_type),
                ',"contentEncoding":', _rmq_str(props.content_encoding),
                ',"headers":', "null" if headers is None else _rmq_value(headers),
                ',"deliveryMode":', "null" if mode is None else str(int(mode)),
                ',"priority":', "null" if priority is None else str(int(priority)),
                ',"correlationId":', _rmq_str(props.correlation_id),
                ',"replyTo":', _rmq_str(props.reply_to),
                ',"expiration":', _rmq_str(props.expiration),
                ',"messageId":', _rmq_str(props.message_id),
                ',"timestamp":', "null" if stamp is None else py_java_date(stamp),
                ',"type":', _rmq_str(props.message_type),
                ',"userId":', _rmq_str(props.user_id),
                ',"appId":', _rmq_str(props.app_id),
                ',"clusterId":', _rmq_str(props.cluster_id or None),
                ',"bodySize":', str(len(body)),
                '},"redelivered":', "true" if item.redelivered else "false",
                ',"data":"', binascii.b2a_base64(body, newline=False).decode("ascii"), '"}',
            )).encode("ascii")
            tag = int(item.delivery_tag)
            out.append(PyRecord(tag, str(tag), "",
                                stamp.timestamp() if stamp is not None else 0.0, fragment))
        return out


# STOMP headers that are not JMS user properties (the STOMP protocol's, Artemis's and the
# fields the event names on its own)
ACTIVEMQ_STANDARD_HEADERS = frozenset({
    "subscription", "message-id", "destination", "ack", "content-length", "content-type",
    "expires", "priority", "timestamp", "persistent", "redelivered", "correlation-id",
    "reply-to", "type", "destination-type", "receipt", "transaction",
})


def _amq_properties(headers: dict[str, str]) -> str:
    return "{" + ",".join([_json_str(k) + ":" + _json_str(v) for k, v in headers.items()
                           if k not in ACTIVEMQ_STANDARD_HEADERS and not k.startswith("_")]) + "}"


class PyActiveMqEncoder:
    """Renders ActiveMQ messages received over STOMP (``(headers, body, is_bytes)`` triples:
    the frame's headers, its body, True for a JMS BytesMessage) as the messages of a Lambda
    ``aws:mq`` event, in AWS's field order (``physicalName``: the queue's name, without
    STOMP's ``/queue/``). ``broker_out_time`` (epoch ms) is when the poller
    received them. ``position`` counts messages, ``seq`` is the messageID."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def encode(self, raw: Sequence[tuple[dict[str, str], bytes, bool]],
               broker_out_time: int) -> list[PyRecord]:
        out: list[PyRecord] = []
        for headers, body, is_bytes in raw:
            mid = headers.get("message-id", "")
            stamp = int(headers.get("timestamp") or 0)
            expires = headers.get("expires")
            get = headers.get
            fragment = "".join((
                '{"messageID":', _json_str(mid), ',"messageType":',
                '"jms/bytes-message"' if is_bytes else '"jms/text-message"',
                ',"deliveryMode":', "2" if get("persistent") == "true" else "1",
                ',"replyTo":', _rmq_str(get("reply-to")),
                ',"type":', _rmq_str(get("type")),
                ',"expiration":', "null" if not expires or expires == "0" else _json_str(expires),
                ',"priority":', str(int(get("priority") or 4)),
                ',"correlationId":', _rmq_str(get("correlation-id")),
                ',"redelivered":', "true" if get("redelivered") == "true" else "false",
                ',"destination":{"physicalName":',
                _json_str(get("destination", "").removeprefix("/queue/")),
                '},"data":"', binascii.b2a_base64(body, newline=False).decode("ascii"),
                '","timestamp":', str(stamp), ',"brokerInTime":', str(stamp),
                ',"brokerOutTime":', str(int(broker_out_time)),
                ',"properties":', _amq_properties(headers), "}",
            )).encode("ascii")
            self._next += 1
            out.append(PyRecord(self._next, mid, "", stamp / 1000.0, fragment))
        return out


def _bounds(n: int, start: int, end: int | None) -> range:
    return range(n)[start:end]


def py_payload_size(records: Sequence[PyRecord], start: int = 0, end: int | None = None,
                    tail_bytes: int = 0) -> int:
    span = _bounds(len(records), start, end)
    total = PY_ENVELOPE_BYTES + tail_bytes + max(len(span) - 1, 0)
    for i in span:
        total += len(records[i].fragment)
    return total


def py_build_payload(records: Sequence[PyRecord], start: int = 0, end: int | None = None,
                     tail: bytes = b"") -> bytes:
    span = _bounds(len(records), start, end)
    if isinstance(records, list | tuple):
        body = b",".join([r.fragment for r in records[span.start:span.stop]])
    else:
        body = b",".join([records[i].fragment for i in span])
    return b"".join((_OPEN, body, _CLOSE, tail, b"}"))


def py_take_batch(buffer: deque[PyRecord], max_count: int, max_bytes: int,
                  tail_bytes: int = 0) -> list[PyRecord]:
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1, got {max_count}")
    batch: list[PyRecord] = []
    if not buffer:
        return batch
    size = PY_ENVELOPE_BYTES + tail_bytes + len(buffer[0].fragment)
    batch.append(buffer.popleft())
    while buffer and len(batch) < max_count:
        grown = size + 1 + len(buffer[0].fragment)
        if grown > max_bytes:
            break
        size = grown
        batch.append(buffer.popleft())
    return batch


# A number token of 19+ digits: orjson turns an integer beyond 64 bits into a float. In one
# C pass (translate) the payload becomes a shape: digits "0", quotes "q", the separators kept,
# spaces and signs dropped, everything else "x". A number follows ``":`` (a key's closing
# quote), ``,`` or ``[``; digits inside strings (sequence numbers after "shardId-...:") do
# not. False alarms only cost speed: the standard parser then reads the document.
_SHAPE = bytes(48 if 48 <= c <= 57 else c if c in b":,[" else 113 if c == 34 else 120
               for c in range(256))
_DROPPED = b" \t\r\n-"
_RUN = b"0" * 19
_NUMBER_STARTS = (b"q:" + _RUN, b"," + _RUN, b"[" + _RUN)


def py_long_integer(payload: bytes) -> bool:
    shape = payload.translate(_SHAPE, _DROPPED)
    return shape.startswith(_RUN) or any(start in shape for start in _NUMBER_STARTS)


pure = types.SimpleNamespace(
    Record=PyRecord,
    KinesisEncoder=PyKinesisEncoder,
    KafkaEncoder=PyKafkaEncoder,
    DynamoDBEncoder=PyDynamoDBEncoder,
    SqsEncoder=PySqsEncoder,
    RabbitMqEncoder=PyRabbitMqEncoder,
    ActiveMqEncoder=PyActiveMqEncoder,
    java_date=py_java_date,
    long_integer=py_long_integer,
    build_payload=py_build_payload,
    build_framed=py_build_framed,
    framed_size=py_framed_size,
    payload_size=py_payload_size,
    take_batch=py_take_batch,
    MAX_PAYLOAD_BYTES=PY_MAX_PAYLOAD_BYTES,
    ENVELOPE_BYTES=PY_ENVELOPE_BYTES,
    IMPLEMENTATION="python",
)


def _load_extension() -> types.ModuleType | None:
    if os.environ.get("POLLER_NO_EXTENSIONS") == "1":
        return None
    try:
        from poller import _fastbatch
    except ImportError as exc:
        warnings.warn(
            f"esm-poller's Cython batcher is not available ({exc}); using the pure-Python twin "
            "(slower). Build it with `python setup.py build_ext --inplace`.",
            RuntimeWarning, stacklevel=2)
        return None
    return _fastbatch


extension: types.ModuleType | None = _load_extension()

if TYPE_CHECKING:
    from poller._fastbatch import (
        ENVELOPE_BYTES,
        MAX_PAYLOAD_BYTES,
        ActiveMqEncoder,
        DynamoDBEncoder,
        KafkaEncoder,
        KinesisEncoder,
        RabbitMqEncoder,
        Record,
        SqsEncoder,
        build_framed,
        build_payload,
        framed_size,
        java_date,
        long_integer,
        payload_size,
        take_batch,
    )

    IMPLEMENTATION: str
else:
    _chosen = extension if extension is not None else pure
    Record = _chosen.Record
    KinesisEncoder = _chosen.KinesisEncoder
    KafkaEncoder = _chosen.KafkaEncoder
    build_framed = _chosen.build_framed
    framed_size = _chosen.framed_size
    DynamoDBEncoder = _chosen.DynamoDBEncoder
    SqsEncoder = _chosen.SqsEncoder
    RabbitMqEncoder = _chosen.RabbitMqEncoder
    ActiveMqEncoder = _chosen.ActiveMqEncoder
    java_date = _chosen.java_date
    long_integer = _chosen.long_integer
    build_payload = _chosen.build_payload
    payload_size = _chosen.payload_size
    take_batch = _chosen.take_batch
    MAX_PAYLOAD_BYTES = _chosen.MAX_PAYLOAD_BYTES
    ENVELOPE_BYTES = _chosen.ENVELOPE_BYTES
    IMPLEMENTATION = "cython" if extension is not None else "python"
