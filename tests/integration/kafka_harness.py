"""Kafka test helpers: topics and records on the real broker, a recording Lambda handler that
reads Kafka events, and mappings/configs for the real service."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from poller.config_model import (
    AwsConfig,
    Config,
    KafkaSource,
    Mapping,
    MetricsConfig,
    ServiceEndpoint,
    StateConfig,
    Target,
)
from tests.helpers import unique_name
from tests.integration.pipeline_harness import FAST
from tests.integration.recorder import SeenRecorder, function_host

CLUSTER_ARN = "arn:aws:kafka:us-east-1:000000000000:cluster/test/0f0e0d0c-1111-2222-3333-4444"


async def create_topic(bootstrap: str, partitions: int = 1, prefix: str = "topic") -> str:
    name = unique_name(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1)])
    finally:
        await admin.close()
    return name


async def produce(bootstrap: str, topic: str,
                  records: Sequence[tuple[int, bytes | None, bytes | None]],
                  headers: Sequence[tuple[str, bytes]] = ()) -> list[tuple[int, int]]:
    """Sends (partition, key, value) records in order; returns their (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key, partition=partition,
                                       headers=list(headers) or None)
                   for partition, key, value in records]
        metas = [await f for f in futures]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (next offset to read) per partition; absent when none."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None:
                out[p] = offset
        return out
    finally:
        await consumer.stop()


async def wait_committed(bootstrap: str, group: str, topic: str, offset: int,
                         timeout: float = 20.0, partition: int = 0) -> None:  # noqa: ASYNC109
    """Waits until the group's committed offset of ``partition`` is ``offset``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = (await committed(bootstrap, group, topic, partition + 1)).get(partition)
        if got == offset:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"committed offset of {topic}-{partition} is {got}, "
                                 f"expected {offset}")
        await asyncio.sleep(0.1)


@dataclass
class KafkaSeen:
    partition_key: str
    offset: int
    key: bytes | None
    value: bytes
    invocation: int


@dataclass
class KafkaRecorder(SeenRecorder[KafkaSeen]):
    """A Lambda handler that records the Kafka events it receives; ``behave`` may raise or
    return a response."""

    def split(self, event: dict[str, Any], n: int) -> tuple[dict[str, Any], list[KafkaSeen]]:
        return event, [KafkaSeen(pk, r["offset"],
                                 base64.b64decode(r["key"]) if "key" in r else None,
                                 base64.b64decode(r["value"]), n)
                       for pk, records in event["records"].items() for r in records]

    def ok_values(self) -> list[bytes]:
        with self.lock:
            return [s.value for s in self.ok]


def kafka_mapping(bootstrap: str, topic: str, *, managed: bool = False, uuid: str | None = None,
                  group: str | None = None, **kw: Any) -> Mapping:
    uuid = uuid or f"m-{topic}"
    source = KafkaSource(topic=topic, bootstrap_servers=tuple(bootstrap.split(",")),
                         consumer_group_id=group or uuid, managed=managed)
    base: dict[str, Any] = dict(uuid=uuid, event_source_arn=CLUSTER_ARN if managed else "",
                                function_name="recorder", starting_position="TRIM_HORIZON",
                                batch_size=10, maximum_batching_window_in_seconds=0,
                                target=Target(type="lambda"), kafka=source)
    base.update(kw)
    return Mapping(**base)


def kafka_config(mapping: Mapping, lambda_endpoint: str, state: Path,
                 moto: str | None = None, **tuning: Any) -> Config:
    services = {"lambda": ServiceEndpoint(endpoint_url=lambda_endpoint)}
    for svc in ("sqs", "sns", "s3", "secretsmanager"):
        if moto:
            services[svc] = ServiceEndpoint(endpoint_url=moto)
    fast = FAST
    if tuning:
        from dataclasses import replace
        fast = replace(FAST, **tuning)
    return Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1", services=services),
                  state=StateConfig(path=str(state)), metrics=MetricsConfig(port=0),
                  tuning=fast)


kafka_function_host = function_host
