"""Kafka end to end: the real Apache Kafka broker -> poller -> function host (Lambda Invoke
API) -> committed offsets and on-failure destinations on real servers."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from poller.config_model import Target
from poller.observability import metrics
from tests.helpers import create_queue, receive_all, unique_name, wait_for
from tests.integration.kafka_harness import (
    CLUSTER_ARN,
    KafkaRecorder,
    KafkaSeen,
    committed,
    create_topic,
    kafka_config,
    kafka_function_host,
    kafka_mapping,
    produce,
    wait_committed,
)
from tests.integration.pipeline_harness import counter, running

RECORD_KEYS = ["topic", "partition", "offset", "timestamp", "timestampType", "key", "value",
               "headers"]


@pytest.mark.parametrize("managed", [False, True], ids=["self-managed", "msk"])
async def test_event_shape_and_per_partition_order(kafka_bootstrap: str, tmp_path: Path,
                                                   managed: bool) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=3)
    sent = await produce(kafka_bootstrap, topic,
                         [(i % 3, f"key-{i % 5}".encode(), f"record-{i}".encode())
                          for i in range(60)],
                         headers=[("trace", b"\x00\xffab"), ("trace", b"")])
    rec = KafkaRecorder()
    async with kafka_function_host(rec) as host:
        mapping = kafka_mapping(kafka_bootstrap, topic, managed=managed, batch_size=7)
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 60, 60, message="not all records arrived")
            await wait_for(lambda: counter(metrics.offset_lag, mapping.uuid) == 0, 10)
    assert sorted(s.value for s in rec.seen) == sorted(f"record-{i}".encode() for i in range(60))
    assert len(rec.seen) == 60, "a record was delivered twice"
    for p in range(3):
        offsets = [off for part, off in sent if part == p]
        assert [s.offset for s in rec.seen if s.partition_key == f"{topic}-{p}"] == offsets
    for event in rec.events:
        assert len(event["records"]) == 1, "one invocation carries one partition"
        assert 1 <= sum(len(v) for v in event["records"].values()) <= 7
    event = rec.events[0]
    if managed:
        assert list(event) == ["eventSource", "eventSourceArn", "bootstrapServers", "records"]
        assert event["eventSource"] == "aws:kafka"
        assert event["eventSourceArn"] == CLUSTER_ARN
    else:
        assert list(event) == ["eventSource", "bootstrapServers", "records"]
        assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == kafka_bootstrap
    [(pkey, records)] = event["records"].items()
    record = records[0]
    assert list(record) == RECORD_KEYS
    assert pkey == f"{record['topic']}-{record['partition']}" and record["topic"] == topic
    assert record["timestampType"] == "CREATE_TIME"
    assert isinstance(record["timestamp"], int) and record["timestamp"] > 1.6e12
    assert record["headers"] == [{"trace": [0, 255, 97, 98]}, {"trace": []}]
    value = base64.b64decode(record["value"])
    i = int(value.decode().split("-")[1])
    assert base64.b64decode(record["key"]) == f"key-{i % 5}".encode()
    assert sent[i] == (record["partition"], record["offset"])


async def test_record_without_key_has_no_key_field(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, b"no-key")])
    rec = KafkaRecorder()
    async with kafka_function_host(rec) as host:
        mapping = kafka_mapping(kafka_bootstrap, topic)
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: rec.ok, 30)
    record = rec.events[0]["records"][f"{topic}-0"][0]
    assert "key" not in record and base64.b64decode(record["value"]) == b"no-key"


async def test_partial_batch_response_retries_from_the_reported_offset(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, f"r{i}".encode()) for i in range(10)])
    failed_once: set[int] = set()

    def behave(event: dict[str, Any], batch: list[KafkaSeen]) -> Any:
        for s in batch:
            if s.value == b"r4" and 4 not in failed_once:
                failed_once.add(4)
                return {"batchItemFailures": [{"itemIdentifier": {
                    "partition": s.partition_key, "offset": s.offset}}]}
        return {"batchItemFailures": []}

    rec = KafkaRecorder(behave)
    async with kafka_function_host(rec) as host:
        mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=10,
                                function_response_types=("ReportBatchItemFailures",))
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.events) >= 2 and len(rec.ok) >= 16, 30)
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 10, timeout=10)
    first, second = rec.events[0], rec.events[1]
    assert [r["offset"] for r in first["records"][f"{topic}-0"]] == list(range(10))
    assert [r["offset"] for r in second["records"][f"{topic}-0"]] == list(range(4, 10))
    assert len(rec.events) == 2


async def test_poison_record_bisected_to_the_on_failure_queue(
        kafka_bootstrap: str, moto_endpoint: str, tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, f"r{i}".encode()) for i in range(8)])
    queue_url, queue_arn = create_queue(moto_endpoint, unique_name("dlq"))

    def behave(event: dict[str, Any], batch: list[KafkaSeen]) -> Any:
        if any(s.value == b"r5" for s in batch):
            raise RuntimeError("poison")
        return None

    rec = KafkaRecorder(behave)
    async with kafka_function_host(rec) as host:
        mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=8,
                                bisect_batch_on_function_error=True, maximum_retry_attempts=0,
                                on_failure_destination=queue_arn)
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db",
                                        moto=moto_endpoint)):
            [message] = await asyncio.to_thread(receive_all, moto_endpoint, queue_url, 1)
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 8, timeout=20)
    assert sorted(rec.ok_values()) == sorted(f"r{i}".encode() for i in range(8) if i != 5)
    doc = json.loads(message["Body"])
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["responseContext"]["functionError"] == "Unhandled"
    info = doc["KafkaBatchInfo"]
    assert (info["topic"], info["partition"], info["startOffset"], info["endOffset"],
            info["batchSize"]) == (topic, 0, 5, 5, 1)


async def test_restart_commits_only_done_offsets_and_resumes_without_loss(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, f"r{i}".encode()) for i in range(10)])

    def stuck(event: dict[str, Any], batch: list[KafkaSeen]) -> Any:
        if any(s.value == b"r6" for s in batch):
            raise RuntimeError("not yet")
        return None

    rec = KafkaRecorder(stuck)
    mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=3)
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: sum(1 for s in rec.seen if s.value == b"r6") >= 3, 30)
    assert (await committed(kafka_bootstrap, mapping.uuid, topic, 1)) == {0: 6}
    await produce(kafka_bootstrap, topic, [(0, None, f"r{i}".encode()) for i in range(10, 14)])
    again = KafkaRecorder()
    async with kafka_function_host(again) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(again.ok) >= 8, 30)
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 14, timeout=10)
    assert [s.offset for s in again.seen] == list(range(6, 14))


async def test_consumer_group_id_and_latest(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, b"before")])
    rec = KafkaRecorder()
    group = unique_name("group")
    mapping = kafka_mapping(kafka_bootstrap, topic, group=group, starting_position="LATEST")
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")) as svc:
            runner = svc.kafka_mappings[mapping.uuid]
            await wait_for(lambda: runner.pipelines, 30)
            await produce(kafka_bootstrap, topic, [(0, None, b"after")])
            await wait_for(lambda: rec.ok, 30)
            await wait_committed(kafka_bootstrap, group, topic, 2, timeout=10)
    assert rec.ok_values() == [b"after"]


async def test_key_parallelism_keeps_per_key_order_in_one_partition(kafka_bootstrap: str,
                                                                   tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic,
                  [(0, f"k{i % 6}".encode(), f"r{i}".encode()) for i in range(60)])
    rec = KafkaRecorder(delay=0.05)
    mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=5,
                            target=Target(type="lambda", key_parallelism=4))
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 60, 60)
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 60)
    assert rec.max_in_flight > 1, "one partition's keys ran in parallel lanes"
    assert rec.max_in_flight <= 4
    assert sorted(rec.ok_values()) == sorted(f"r{i}".encode() for i in range(60))
    for k in range(6):
        offsets = [s.offset for s in rec.seen if s.key == f"k{k}".encode()]
        assert offsets == sorted(offsets) == list(range(k, 60, 6))


async def test_poison_record_to_a_kafka_topic_destination(kafka_bootstrap: str,
                                                          tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    dlt = await create_topic(kafka_bootstrap, prefix="dlt")
    await produce(kafka_bootstrap, topic, [(0, f"k{i}".encode(), f"r{i}".encode())
                                           for i in range(4)], headers=[("h", b"\x01")])

    def behave(event: dict[str, Any], batch: list[KafkaSeen]) -> Any:
        if any(s.value == b"r2" for s in batch):
            raise RuntimeError("poison")
        return None

    rec = KafkaRecorder(behave)
    async with kafka_function_host(rec) as host:
        mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=4,
                                bisect_batch_on_function_error=True, maximum_retry_attempts=0,
                                on_failure_destination=f"kafka://{dlt}")
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 4)
    consumer = AIOKafkaConsumer(dlt, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        [message] = (await consumer.getmany(timeout_ms=10_000)).popitem()[1]
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"k2", b"r2")
    headers = dict(message.headers)
    assert headers["h"] == b"\x01"
    doc = json.loads(headers["esm-failure"])
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["KafkaBatchInfo"]["startOffset"] == 2


async def test_at_timestamp_starts_at_the_first_record_at_or_after_it(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        base = 1_700_000_000_000
        for i in range(4):
            await producer.send_and_wait(topic, f"r{i}".encode(), timestamp_ms=base + i * 1000)
    finally:
        await producer.stop()
    rec = KafkaRecorder()
    mapping = kafka_mapping(kafka_bootstrap, topic, starting_position="AT_TIMESTAMP",
                            starting_position_timestamp=(base + 1500) / 1000)
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 4)
    assert rec.ok_values() == [b"r2", b"r3"]
    assert rec.events[0]["records"][f"{topic}-0"][0]["timestamp"] == base + 2000


async def test_python_target_without_aws_credentials(kafka_bootstrap: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, b"x")] * 3)
    mapping = kafka_mapping(kafka_bootstrap, topic, target=Target(
        type="python", handler="tests.functions.noop:async_handler"))
    async with running(kafka_config(mapping, "http://127.0.0.1:9", tmp_path / "s.db")):
        await wait_committed(kafka_bootstrap, mapping.uuid, topic, 3)
    assert counter(metrics.records_processed, mapping.uuid) == 3


async def test_filtered_records_are_committed_past_and_never_invoked(kafka_bootstrap: str,
                                                                      tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap)
    values = [{"kind": "order", "n": 0}, {"kind": "refund", "n": 1}, {"kind": "refund", "n": 2},
              "plain text", {"kind": "order", "n": 4}, {"kind": "refund", "n": 5},
              {"kind": "refund", "n": 6}, {"kind": "refund", "n": 7}]
    raw = [v.encode() if isinstance(v, str) else json.dumps(v).encode() for v in values]
    await produce(kafka_bootstrap, topic, [(0, b"k", v) for v in raw])
    rec = KafkaRecorder()
    mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=2,
                            filter_patterns=('{"value": {"kind": ["order"]}}',))
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            # the last three records are filtered: the commit still reaches the end
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, len(values), timeout=30)
            filtered = counter(metrics.records_filtered, mapping.uuid, shard=f"{topic}-0")
    # a value that is not JSON falls back to the metadata rules (none here): kept, as in Lambda
    assert [s.offset for s in rec.seen] == [0, 3, 4]
    assert [s.value for s in rec.seen] == [raw[0], raw[3], raw[4]]
    assert filtered == 5


async def test_full_partition_is_held_then_paused_and_loses_nothing(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from poller.sources import kafka as kafka_source

    monkeypatch.setattr(kafka_source, "inflight_limit", lambda mapping: 20)
    monkeypatch.setattr(kafka_source, "HOLD_SECONDS", 0.3)
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(0, None, f"r{i}".encode()) for i in range(200)])
    rec = KafkaRecorder(delay=0.03)
    mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=5)
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")) as svc:
            runner = svc.kafka_mappings[mapping.uuid]
            # more than the limit in flight: first held out of getmany, then paused
            await wait_for(lambda: runner._held, 30, interval=0.001)
            consumer = runner.consumer
            assert consumer is not None
            await wait_for(lambda: consumer.paused(), 30, interval=0.001)
            await wait_committed(kafka_bootstrap, mapping.uuid, topic, 200, timeout=60)
            await wait_for(lambda: not runner._held and not consumer.paused(), 10)
    assert [s.offset for s in rec.seen] == list(range(200))  # once each, in order
