"""Kinesis Data Streams: the ShardApi adapter for poller.sources.shards (``Data`` stays base64
end to end)."""

from __future__ import annotations

from typing import Any

from poller.awsjson import AwsJsonClient
from poller.batching import KinesisEncoder
from poller.config_model import Mapping, TuningConfig

MAX_GET_RECORDS = 10000


def stream_name(arn: str) -> str:
    return arn.split(":", 5)[5].split("/", 1)[1]


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
