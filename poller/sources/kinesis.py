"""Kinesis Data Streams: the ShardApi adapter for poller.sources.shards (``Data`` stays base64
end to end)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from poller.awsjson import AwsJsonClient
from poller.batching import KinesisEncoder, Record
from poller.config_model import Mapping, TuningConfig
from poller.filtering import MISSING, NO_MATCH, FilterSet

MAX_GET_RECORDS = 10000


def stream_name(arn: str) -> str:
    return arn.split(":", 5)[5].split("/", 1)[1]


_VIEW_FIELDS = {"partitionKey": "PartitionKey", "sequenceNumber": "SequenceNumber",
                "approximateArrivalTimestamp": "ApproximateArrivalTimestamp"}


class KinesisView:
    """A GetRecords record as FilterCriteria see it: the ``kinesis`` metadata fields and
    ``data`` decoded from base64 and parsed as JSON, only if a pattern reads it (NO_MATCH when
    it is not JSON: every ``data`` rule then fails, as in Lambda)."""

    __slots__ = ("_data", "_item")

    def __init__(self, item: dict[str, Any]) -> None:
        self._item = item
        self._data: Any = MISSING

    def get(self, key: str, default: Any = None, /) -> Any:
        if key == "data":
            data = self._data
            if data is MISSING:
                try:
                    data = json.loads(base64.b64decode(self._item["Data"]).decode())
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    data = NO_MATCH
                self._data = data
            return data
        if key == "kinesisSchemaVersion":
            return "1.0"
        name = _VIEW_FIELDS.get(key)
        return default if name is None else self._item.get(name, default)


def filter_records(filters: FilterSet, encoder: KinesisEncoder,
                   raw: list[dict[str, Any]]) -> tuple[list[Record], int]:
    """Encode ``raw`` keeping shard order; records no filter matches come back already
    ``done`` with an empty fragment (the checkpoint passes them; they are never batched).
    Returns (records, how many were filtered out)."""
    keep = [filters.matches(KinesisView(item)) for item in raw]
    kept = sum(keep)
    if kept == len(raw):
        return encoder.encode(raw), 0
    encoded = iter(encoder.encode([item for item, k in zip(raw, keep, strict=True) if k]))
    out: list[Record] = []
    for item, k in zip(raw, keep, strict=True):
        if k:
            out.append(next(encoded))
        else:
            seq = item["SequenceNumber"]
            r = Record(int(seq), seq, item["PartitionKey"], item["ApproximateArrivalTimestamp"],
                       b"")
            r.done = True
            out.append(r)
    return out, len(raw) - kept


class KinesisApi:
    max_records = MAX_GET_RECORDS
    supports_at_timestamp = True
    problem: str | None = None

    def __init__(self, client: AwsJsonClient, mapping: Mapping, tuning: TuningConfig) -> None:
        self._client = client
        self._mapping = mapping
        self.stream = stream_name(mapping.event_source_arn)
        self.min_poll_interval = tuning.min_poll_interval_seconds
        self.idle_poll_interval = tuning.idle_poll_seconds

    def encoder(self, shard_id: str) -> KinesisEncoder:
        m = self._mapping
        return KinesisEncoder(shard_id, m.region, m.event_source_arn, m.invoke_identity_arn)

    def filter(self, filters: FilterSet, encoder: Any,
               raw: list[dict[str, Any]]) -> tuple[list[Record], int]:
        return filter_records(filters, encoder, raw)

    async def list_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        params: dict[str, Any] = {"StreamName": self.stream}
        while True:
            resp = await self._client.call("ListShards", params)
            shards.extend(resp.get("Shards", []))
            token = resp.get("NextToken")
            if not token:
                return shards
            params = {"NextToken": token}

    async def get_shard_iterator(self, shard_id: str, iterator_type: str,
                                 sequence_number: str | None = None,
                                 timestamp: float | None = None) -> str | None:
        params: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard_id,
                                  "ShardIteratorType": iterator_type}
        if sequence_number is not None:
            params["StartingSequenceNumber"] = sequence_number
        if timestamp is not None:
            params["Timestamp"] = timestamp
        resp = await self._client.call("GetShardIterator", params)
        it = resp.get("ShardIterator")
        return str(it) if it else None

    async def get_records(self, iterator: str, limit: int) -> dict[str, Any]:
        return await self._client.call("GetRecords", {"ShardIterator": iterator, "Limit": limit})
