"""DynamoDB Streams: the event records are written by the batcher
(poller.batching.DynamoDBEncoder); this module holds the on-failure ``DDBStreamBatchInfo``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from poller.events.failure import iso_s
from poller.records import Record

BATCH_INFO_KEY = "DDBStreamBatchInfo"


def batch_info(shard_id: str, stream_arn: str, records: Sequence[Record]) -> dict[str, Any]:
    first, last = records[0], records[-1]
    return {
        "shardId": shard_id,
        "startSequenceNumber": first.seq,
        "endSequenceNumber": last.seq,
        "approximateArrivalOfFirstRecord": iso_s(datetime.fromtimestamp(first.arrival, UTC)),
        "approximateArrivalOfLastRecord": iso_s(datetime.fromtimestamp(last.arrival, UTC)),
        "batchSize": len(records),
        "streamArn": stream_arn,
    }
