"""Kafka consumer-group behaviour on the real broker: a second poller joining and leaving, a
poller killed with SIGKILL mid-batch, and a broker restart during consumption."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from poller.observability import metrics
from tests.helpers import wait_for
from tests.infra.servers import start_kafka
from tests.integration.kafka_harness import (
    KafkaRecorder,
    committed,
    create_topic,
    kafka_config,
    kafka_function_host,
    kafka_mapping,
    produce,
    wait_committed,
)
from tests.integration.pipeline_harness import counter, running

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4


def _values(n: int, start: int = 0) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(i % PARTITIONS, None, f"r{i}".encode()) for i in range(start, start + n)]


def _in_partition_order(rec: KafkaRecorder) -> None:
    """Within each invocation and across a partition's history, offsets only move forward
    except where a new owner re-reads from the committed offset."""
    for event in rec.events:
        for records in event["records"].values():
            offsets = [r["offset"] for r in records]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


async def test_second_poller_joins_and_leaves_without_loss(kafka_bootstrap: str,
                                                           tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=PARTITIONS)
    await produce(kafka_bootstrap, topic, _values(40))
    rec = KafkaRecorder()
    mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=5)
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "a.db")) as a:
            await wait_for(lambda: len(rec.ok) >= 40, 30)
            runner_a = a.kafka_mappings[mapping.uuid]
            assert len(runner_a.pipelines) == PARTITIONS
            async with running(kafka_config(mapping, host.endpoint, tmp_path / "b.db")) as b:
                runner_b = b.kafka_mappings[mapping.uuid]
                await wait_for(lambda: runner_b.pipelines and
                               len(runner_a.pipelines) + len(runner_b.pipelines) == PARTITIONS,
                               30, message="the group did not split the partitions")
                assert 0 < len(runner_a.pipelines) < PARTITIONS
                await produce(kafka_bootstrap, topic, _values(40, 40))
                await wait_for(lambda: len(set(rec.ok_values())) >= 80, 30)
            await wait_for(lambda: len(runner_a.pipelines) == PARTITIONS, 30,
                           message="the partitions did not come back after B left")
            await produce(kafka_bootstrap, topic, _values(40, 80))
            await wait_for(lambda: len(set(rec.ok_values())) >= 120, 30)
            for p in range(PARTITIONS):
                await wait_committed(kafka_bootstrap, mapping.uuid, topic, 30, partition=p)
    seen = Counter(rec.ok_values())
    assert set(seen) == {f"r{i}".encode() for i in range(120)}
    assert max(seen.values()) == 1, "a graceful handoff commits before the revoke completes"
    _in_partition_order(rec)


def _poller_config(path: Path, bootstrap: str, topic: str, uuid: str, lambda_url: str,
                   state: Path) -> None:
    path.write_text(textwrap.dedent(f"""\
        aws: {{region: us-east-1, lambda: {{endpoint_url: "{lambda_url}"}}}}
        state: {{path: "{state}"}}
        metrics: {{port: 0}}
        tuning: {{kafka_session_timeout_seconds: 3, checkpoint_flush_seconds: 0.05,
                  retry_base_seconds: 0.02, retry_max_seconds: 0.1}}
        mappings:
          - UUID: {uuid}
            SelfManagedEventSource: {{Endpoints: {{KAFKA_BOOTSTRAP_SERVERS: ["{bootstrap}"]}}}}
            Topics: [{topic}]
            FunctionName: recorder
            StartingPosition: TRIM_HORIZON
            BatchSize: 5
            MaximumBatchingWindowInSeconds: 0
        """))


async def test_poller_killed_mid_batch_loses_nothing(kafka_bootstrap: str,
                                                      tmp_path: Path) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=PARTITIONS)
    await produce(kafka_bootstrap, topic, _values(200))
    rec = KafkaRecorder(delay=0.02)
    mapping = kafka_mapping(kafka_bootstrap, topic, batch_size=5)
    cfg = tmp_path / "poller.yaml"
    async with kafka_function_host(rec) as host:
        _poller_config(cfg, kafka_bootstrap, topic, mapping.uuid, host.endpoint,
                       tmp_path / "child.db")
        log = (tmp_path / "child.log").open("wb")
        child = subprocess.Popen(  # noqa: ASYNC220 - killed below, never waited on blocking
            [sys.executable, "-m", "poller", "run", "-c", str(cfg)], cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while sum((await committed(kafka_bootstrap, mapping.uuid, topic,
                                       PARTITIONS)).values()) < 20:
                assert child.poll() is None, (tmp_path / "child.log").read_text()
                assert asyncio.get_running_loop().time() < deadline, "the child committed nothing"
                await asyncio.sleep(0.02)
        finally:
            child.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.wait, 10)
            log.close()
        killed_at, ok_at_kill = len(rec.seen), len(rec.ok)
        at_kill = await committed(kafka_bootstrap, mapping.uuid, topic, PARTITIONS)
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "a.db",
                                        kafka_session_timeout_seconds=3)):
            await wait_for(lambda: set(rec.ok_values()) >= {f"r{i}".encode()
                                                           for i in range(200)}, 60)
            for p in range(PARTITIONS):
                await wait_committed(kafka_bootstrap, mapping.uuid, topic, 50, partition=p)
    assert set(s.value for s in rec.seen) == {f"r{i}".encode() for i in range(200)}
    assert killed_at < 200
    child_done = {(s.partition_key, s.offset) for s in rec.ok[:ok_at_kill]}
    for p in range(PARTITIONS):
        key = f"{topic}-{p}"
        start = at_kill.get(p, 0)
        # the killed poller committed only what its function had finished ...
        assert {(key, o) for o in range(start)} <= child_done
        # ... and the survivor re-reads exactly from there: no loss, no skip, in order
        assert [s.offset for s in rec.seen[killed_at:] if s.partition_key == key] == list(
            range(start, 50))
    assert sum(at_kill.values()) > 0, "the killed poller never committed"
    _in_partition_order(rec)


async def test_broker_restart_during_consumption(tmp_path: Path) -> None:
    broker = await asyncio.to_thread(start_kafka, tmp_path / "logs", workdir=tmp_path / "kafka")
    bootstrap = broker.endpoint
    try:
        topic = await create_topic(bootstrap, partitions=2)
        await produce(bootstrap, topic, [(i % 2, None, f"r{i}".encode()) for i in range(20)])
        rec = KafkaRecorder()
        mapping = kafka_mapping(bootstrap, topic, batch_size=5)
        async with kafka_function_host(rec) as host:
            async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
                await wait_for(lambda: len(rec.ok) >= 10, 30)
                broker.stop()
                broker = await asyncio.to_thread(
                    start_kafka, tmp_path / "logs", workdir=tmp_path / "kafka",
                    ports=(broker.port, _controller_port(tmp_path / "kafka")))
                await produce(bootstrap, topic, [(i % 2, None, f"r{i}".encode())
                                                 for i in range(20, 40)])
                await wait_for(lambda: set(rec.ok_values()) >= {f"r{i}".encode()
                                                               for i in range(40)}, 60)
                for p in range(2):
                    await wait_committed(bootstrap, mapping.uuid, topic, 20, partition=p,
                                         timeout=30)
                assert counter(metrics.records_polled, mapping.uuid) >= 40
    finally:
        broker.stop()
    _in_partition_order(rec)


def _controller_port(workdir: Path) -> int:
    for line in (workdir / "server.properties").read_text().splitlines():
        if line.startswith("controller.quorum.voters="):
            return int(line.rsplit(":", 1)[1])
    raise AssertionError("no controller port in server.properties")
