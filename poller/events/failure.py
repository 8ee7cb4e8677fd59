"""The on-failure invocation record (DestinationConfig.OnFailure), in AWS's key order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from poller.records import Record

RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


def iso_ms(moment: datetime) -> str:
    """``2019-11-14T00:38:06.021Z``"""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_s(moment: datetime) -> str:
    """``2019-11-14T00:13:19Z``"""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_document(*, request_id: str, function_arn: str, condition: str,
                     approximate_invoke_count: int, response: dict[str, Any] | None,
                     timestamp: datetime, batch_info_key: str,
                     batch_info: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": approximate_invoke_count,
        },
    }
    if response is not None:
        doc["responseContext"] = response
    doc["version"] = "1.0"
    doc["timestamp"] = iso_ms(timestamp)
    doc[batch_info_key] = batch_info
    return doc


def stream_batch_info(shard_id: str, stream_arn: str, records: Sequence[Record],
                      stamp: Callable[[datetime], str]) -> dict[str, Any]:
    """``KinesisBatchInfo`` / ``DDBStreamBatchInfo``: the same fields, ``stamp`` formats the
    arrival times (Kinesis with milliseconds, DynamoDB without)."""
    first, last = records[0], records[-1]
    return {
        "shardId": shard_id,
        "startSequenceNumber": first.seq,
        "endSequenceNumber": last.seq,
        "approximateArrivalOfFirstRecord": stamp(datetime.fromtimestamp(first.arrival, UTC)),
        "approximateArrivalOfLastRecord": stamp(datetime.fromtimestamp(last.arrival, UTC)),
        "batchSize": len(records),
        "streamArn": stream_arn,
    }
