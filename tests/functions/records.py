"""Reading the records of any event source's Lambda event (what a real function would do)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any


def iter_records(event: Any) -> Iterator[dict[str, Any]]:
    """Records of a Kinesis / DynamoDB / SQS event (``Records``) or a Kafka event (``records``,
    a map of topic-partition to record lists)."""
    if not isinstance(event, dict):
        return
    records = event.get("Records")
    if isinstance(records, list):
        yield from records
        return
    kafka = event.get("records")
    if isinstance(kafka, dict):
        for partition in kafka.values():
            yield from partition


def record_data(record: dict[str, Any]) -> bytes:
    """The record's payload as bytes (Kinesis/Kafka data base64-decoded)."""
    if "kinesis" in record:
        return base64.b64decode(record["kinesis"]["data"])
    if "dynamodb" in record:
        return json.dumps(record["dynamodb"]).encode()
    if "body" in record:
        return str(record["body"]).encode()
    if "value" in record:
        return base64.b64decode(record["value"])
    if "data" in record:
        return base64.b64decode(record["data"])
    return b""


def item_identifier(record: dict[str, Any]) -> str:
    """What ReportBatchItemFailures expects: the sequence number (streams) or message id (SQS)."""
    if "kinesis" in record:
        return str(record["kinesis"]["sequenceNumber"])
    if "dynamodb" in record:
        return str(record["dynamodb"]["SequenceNumber"])
    return str(record.get("messageId") or record.get("offset") or "")
