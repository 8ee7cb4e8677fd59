"""Kafka (Amazon MSK and self-managed): the event envelope around the records the batcher wrote
(poller.batching.KafkaEncoder), the partial batch response's item identifier, and the on-failure
``KafkaBatchInfo``.

One invocation carries one partition's records, so ``records`` has one key, ``"<topic>-<p>"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from poller.config_model import KafkaSource
from poller.records import Record

BATCH_INFO_KEY = "KafkaBatchInfo"
MSK_EVENT_SOURCE = "aws:kafka"
SELF_MANAGED_EVENT_SOURCE = "SelfManagedKafka"


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def envelope(source: KafkaSource, event_source_arn: str, topic: str,
             partition: int) -> tuple[bytes, bytes]:
    """(head, tail) of one partition's event: head + records joined by commas + tail."""
    head = '{"eventSource":'
    if source.managed:
        head += (json.dumps(MSK_EVENT_SOURCE) + ',"eventSourceArn":'
                 + json.dumps(event_source_arn))
    else:
        head += json.dumps(SELF_MANAGED_EVENT_SOURCE)
    head += (',"bootstrapServers":' + json.dumps(source.bootstrap) + ',"records":{'
             + json.dumps(partition_key(topic, partition)) + ":[")
    return head.encode("ascii"), b"]}}"


def item_key(shard_id: str) -> Any:
    """The record ``seq`` (offset) a Kafka ``itemIdentifier`` names:
    ``{"partition": "<topic>-<p>", "offset": <int>}`` (powertools' shape); None otherwise."""

    def key(ident: object) -> str | None:
        if not isinstance(ident, dict) or ident.get("partition") != shard_id:
            return None
        offset = ident.get("offset")
        if type(offset) is int and offset >= 0:
            return str(offset)
        if isinstance(offset, str) and offset.isdigit():
            return str(int(offset))
        return None

    return key


def batch_info(source: KafkaSource, topic: str, partition: int,
               records: Sequence[Record]) -> dict[str, Any]:
    """The batch description in an on-failure record (AWS's exact layout is unconfirmed)."""
    return {
        "batchSize": len(records),
        "bootstrapServers": source.bootstrap,
        "consumerGroupId": source.consumer_group_id,
        "topic": topic,
        "partition": partition,
        "startOffset": records[0].position,
        "endOffset": records[-1].position,
    }
