"""Type stub for the Cython Kafka record encoder; ``poller.kafka_records`` holds its twin."""

from collections.abc import Iterable
from typing import Any

from poller.records import Record

def encode_records(head: bytes, records: Iterable[Any], min_offset: int) -> list[Record]: ...
