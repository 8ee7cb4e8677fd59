"""Type stub for the Cython batch builder; ``poller.batching`` holds its pure-Python twin."""

from collections import deque
from collections.abc import Sequence
from typing import Any

MAX_PAYLOAD_BYTES: int  # 6,291,456: Lambda's synchronous invoke payload limit
ENVELOPE_BYTES: int  # len(b'{"Records":[]}')

class Record:
    """One source record, already rendered as its event JSON object (``fragment``)."""

    position: int  # total order within a shard (sequence number as int)
    seq: str  # the position as AWS prints it (itemIdentifier for partial batch responses)
    key: str  # partition key: records with one key keep their order
    arrival: float  # approximate arrival time, epoch seconds
    fragment: bytes  # this record's object in the event's "Records" array
    done: bool  # set when processed, filtered or given up: the checkpoint may pass it
    def __init__(self, position: int, seq: str, key: str, arrival: float,
                 fragment: bytes) -> None: ...

class KinesisEncoder:
    """Renders Kinesis GetRecords records (the API's JSON, ``Data`` still base64) as Lambda
    Kinesis event records, in AWS's field order."""

    def __init__(self, shard_id: str, region: str, stream_arn: str,
                 invoke_identity_arn: str) -> None: ...
    def encode(self, raw: Sequence[dict[str, Any]]) -> list[Record]: ...

def payload_size(records: Sequence[Record], start: int = 0, end: int | None = None,
                 tail_bytes: int = 0) -> int: ...
def build_payload(records: Sequence[Record], start: int = 0, end: int | None = None,
                  tail: bytes = b"") -> bytes: ...
def take_batch(buffer: deque[Record], max_count: int, max_bytes: int,
               tail_bytes: int = 0) -> list[Record]: ...

class KafkaEncoder:
    """Renders Kafka consumer records (aiokafka ConsumerRecord attributes) as the record
    objects of a Lambda Kafka event, in AWS's field order."""

    def __init__(self, topic: str, partition: int) -> None: ...
    def encode(self, raw: Sequence[Any]) -> list[Record]: ...

def framed_size(records: Sequence[Record], start: int = 0, end: int | None = None,
                fixed_bytes: int = 0) -> int: ...
def build_framed(head: bytes, records: Sequence[Record], start: int = 0, end: int | None = None,
                 tail: bytes = b"") -> bytes: ...
class DynamoDBEncoder:
    """Renders DynamoDB Streams GetRecords records as Lambda DynamoDB event records."""

    def __init__(self, region: str, stream_arn: str) -> None: ...
    def encode(self, raw: Sequence[dict[str, Any]]) -> list[Record]: ...

class SqsEncoder:
    """Renders SQS ReceiveMessage messages as Lambda SQS event records."""

    def __init__(self, region: str, queue_arn: str) -> None: ...
    def encode(self, raw: Sequence[dict[str, Any]]) -> list[Record]: ...

def java_date(when: Any) -> str:
    """A datetime as the JSON string Lambda's Java poller writes for a Date (UTC, en_US)."""

class RabbitMqEncoder:
    """Renders RabbitMQ deliveries (aiormq DeliveredMessage) as the messages of a Lambda
    ``aws:rmq`` event."""

    def encode(self, raw: Sequence[Any]) -> list[Record]: ...

class ActiveMqEncoder:
    """Renders ActiveMQ STOMP messages ``(headers, body, is_bytes)`` as the messages of a
    Lambda ``aws:mq`` event."""

    def __init__(self) -> None: ...
    def encode(self, raw: Sequence[tuple[dict[str, str], bytes, bool]],
               broker_out_time: int) -> list[Record]: ...

def long_integer(payload: bytes) -> bool:
    """True when ``payload`` (JSON) may hold an integer of 19+ digits outside its strings."""
