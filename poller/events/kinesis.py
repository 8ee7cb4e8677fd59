"""Kinesis: the event records are written by the batcher (poller.batching.KinesisEncoder);
this module holds the on-failure ``KinesisBatchInfo``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from poller.events.failure import iso_ms, stream_batch_info
from poller.records import Record

BATCH_INFO_KEY = "KinesisBatchInfo"


def batch_info(shard_id: str, stream_arn: str, records: Sequence[Record]) -> dict[str, Any]:
    return stream_batch_info(shard_id, stream_arn, records, iso_ms)
