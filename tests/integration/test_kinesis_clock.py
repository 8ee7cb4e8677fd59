"""Behaviour that needs time to pass: a Kinesis server whose clock the test moves (tests/infra/
clock.cjs) expires shard iterators and ages records without waiting minutes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    create_queue,
    create_stream,
    put_records,
    receive_all,
    unique_name,
    wait_for,
)
from tests.infra.servers import RunningServer, start_kinesalite, start_kinesis_local
from tests.integration.pipeline_harness import (
    Recorder,
    config_for,
    counter,
    function_host,
    mapping_for,
    metrics,
    running,
)


def set_clock(path: Path, offset_ms: int) -> None:
    path.write_text(str(offset_ms))


@pytest.fixture
def clock(tmp_path: Path) -> Path:
    path = tmp_path / "clock-offset-ms"
    path.write_text("0")
    return path


@pytest.fixture(params=["kinesalite", "kinesis-local"])
def timed_kinesis(request: pytest.FixtureRequest, clock: Path,
                  tmp_path: Path) -> Iterator[RunningServer]:
    starter = start_kinesalite if request.param == "kinesalite" else start_kinesis_local
    server = starter(log_dir=tmp_path, clock_file=clock)
    try:
        yield server
    finally:
        server.stop()


async def test_expired_iterator_is_renewed_after_the_last_record_read(
        timed_kinesis: RunningServer, clock: Path, tmp_path: Path) -> None:
    ep = timed_kinesis.endpoint
    stream = unique_name("expire")
    arn = create_stream(ep, stream, shards=1)
    put_records(ep, stream, [("k", f"first-{i}") for i in range(5)])
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=5)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 5, 30)
            set_clock(clock, 6 * 60 * 1000)  # iterators live 5 minutes
            await wait_for(lambda: counter(metrics.poll_errors, mapping.uuid,
                                           kind="expired_iterator") >= 1, 30)
            await asyncio.to_thread(put_records, ep, stream,
                                    [("k", f"second-{i}") for i in range(5)])
            await wait_for(lambda: len(rec.ok) >= 10, 30)
    assert [s.data.decode() for s in rec.seen] == (
        [f"first-{i}" for i in range(5)] + [f"second-{i}" for i in range(5)])


async def test_records_older_than_maximum_record_age_go_to_the_destination_uninvoked(
        timed_kinesis: RunningServer, clock: Path, moto_endpoint: str,
        tmp_path: Path) -> None:
    ep = timed_kinesis.endpoint
    set_clock(clock, -120 * 1000)  # records arrive stamped two minutes ago
    stream = unique_name("age")
    arn = create_stream(ep, stream, shards=1)
    queue_url, queue_arn = create_queue(moto_endpoint, unique_name("dlq"))
    sent = put_records(ep, stream, [("k", f"old-{i}") for i in range(3)])
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, maximum_record_age_in_seconds=60,
                              on_failure_destination=queue_arn)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db",
                                      moto=moto_endpoint)):
            (message,) = await _receive(moto_endpoint, queue_url)
            await wait_for(lambda: counter(metrics.records_onfailure_delivered,
                                           mapping.uuid) == 3, 10)
    assert rec.events == []
    doc = json.loads(message["Body"])
    assert doc["requestContext"]["condition"] == "RecordAgeExceeded"
    assert doc["requestContext"]["approximateInvokeCount"] == 1
    assert "responseContext" not in doc
    info = doc["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sent[0][1], sent[-1][1], 3)


async def _receive(endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(receive_all, endpoint, queue_url, 1)
