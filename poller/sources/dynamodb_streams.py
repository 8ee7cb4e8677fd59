"""DynamoDB Streams: the ShardApi adapter for poller.sources.shards.

DescribeStream lists shards and their lineage (ParentShardId); iterators expire after 15
minutes (renewed by the shard reader on ExpiredIteratorException); GetRecords returns at most
1,000 records; Lambda's base rate is 4 polls/s/shard. Only TRIM_HORIZON and LATEST exist."""

from __future__ import annotations

from typing import Any

from poller.awsjson import AwsJsonClient
from poller.batching import DynamoDBEncoder, Record
from poller.config_model import Mapping, TuningConfig
from poller.filtering import FilterSet

MAX_GET_RECORDS = 1000


class DynamoDBStreamsApi:
    max_records = MAX_GET_RECORDS
    supports_at_timestamp = False
    problem: str | None = None

    def __init__(self, client: AwsJsonClient, mapping: Mapping, tuning: TuningConfig) -> None:
        self._client = client
        self._mapping = mapping
        self.stream_arn = mapping.event_source_arn
        self.min_poll_interval = tuning.ddb_poll_interval_seconds
        self.idle_poll_interval = tuning.ddb_poll_interval_seconds

    def encoder(self, shard_id: str) -> DynamoDBEncoder:
        return DynamoDBEncoder(self._mapping.region, self.stream_arn)

    def filter(self, filters: FilterSet, encoder: DynamoDBEncoder,
               raw: list[dict[str, Any]]) -> tuple[list[Record], int]:
        """FilterCriteria see the GetRecords record itself: ``dynamodb`` (AttributeValue
        JSON) and the metadata fields (``eventName``, ``eventSource``, ...)."""
        records = encoder.encode(raw)
        filtered = 0
        for record, item in zip(records, raw, strict=True):
            if not filters.matches(item):
                record.done = True
                filtered += 1
        return records, filtered

    async def list_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        params: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            resp = await self._client.call("DescribeStream", params)
            desc = resp.get("StreamDescription") or {}
            # a deleted table's stream stays readable for 24 h, DISABLED, its shards closed
            self.problem = ("the stream is DISABLED (its table was deleted or its stream "
                            "turned off)" if desc.get("StreamStatus") == "DISABLED" else None)
            shards.extend(desc.get("Shards") or [])
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            params = {"StreamArn": self.stream_arn, "ExclusiveStartShardId": last}

    async def get_shard_iterator(self, shard_id: str, iterator_type: str,
                                 sequence_number: str | None = None,
                                 timestamp: float | None = None) -> str | None:
        params: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id,
                                  "ShardIteratorType": iterator_type}
        if sequence_number is not None:
            params["SequenceNumber"] = sequence_number
        resp = await self._client.call("GetShardIterator", params)
        it = resp.get("ShardIterator")
        return str(it) if it else None

    async def get_records(self, iterator: str, limit: int) -> dict[str, Any]:
        return await self._client.call("GetRecords", {"ShardIterator": iterator,
                                                      "Limit": min(limit, MAX_GET_RECORDS)})
