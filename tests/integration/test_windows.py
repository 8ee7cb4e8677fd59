"""Tumbling windows end to end on a real Kinesis server: state carried between invocations and
across a restart, the final invocation, a missing state, an oversized state, filters."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    KinesisEndpoint,
    create_stream,
    make_boto3_client,
    put_records,
    unique_name,
    wait_for,
)
from tests.infra.servers import RunningServer, start_kinesalite
from tests.integration.pipeline_harness import (
    Recorder,
    config_for,
    counter,
    function_host,
    mapping_for,
    metrics,
    running,
)

EVENT_KEYS = ["Records", "window", "state", "shardId", "eventSourceARN",
              "isFinalInvokeForWindow", "isWindowTerminatedEarly"]


class Aggregator:
    """Sums each record's ``v`` into the window's state; keeps the state of final invokes."""

    def __init__(self) -> None:
        self.finals: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], batch: list[Any]) -> dict[str, Any]:
        state = dict(event["state"]) or {"sum": 0, "count": 0}
        for r in event["Records"]:
            state["sum"] += json.loads(base64.b64decode(r["kinesis"]["data"]))["v"]
            state["count"] += 1
        if event["isFinalInvokeForWindow"]:
            self.finals.append({"window": event["window"], "shard": event["shardId"], **state})
        return {"state": state}


def set_clock(path: Path, offset_ms: int) -> None:
    path.write_text(str(offset_ms))


def row(state: Path, mapping: str) -> tuple[str, dict[str, Any] | None]:
    with sqlite3.connect(state) as conn:
        checkpoint, window = conn.execute(
            "SELECT checkpoint, window_state FROM checkpoints WHERE mapping = ?",
            (mapping,)).fetchone()
    return checkpoint, None if window is None else json.loads(window)


@pytest.fixture
def clock(tmp_path: Path) -> Path:
    path = tmp_path / "clock-offset-ms"
    path.write_text("0")
    return path


@pytest.fixture
def timed_kinesalite(clock: Path, tmp_path: Path) -> Iterator[RunningServer]:
    server = start_kinesalite(log_dir=tmp_path, clock_file=clock)
    try:
        yield server
    finally:
        server.stop()


async def test_window_state_is_summed_across_invokes_and_a_restart(
        timed_kinesalite: RunningServer, clock: Path, tmp_path: Path) -> None:
    length = 60
    # records stamped an hour ahead, 2 s into a window: windows close only when a record of
    # the next window is read, whatever the test's pace
    now = time.time()
    first_start = math.ceil((now + 3600) / length) * length
    set_clock(clock, int((first_start + 2 - now) * 1000))
    ep = timed_kinesalite.endpoint
    stream = unique_name("window")
    arn = create_stream(ep, stream, shards=1)
    part_a = [{"v": i} for i in range(1, 11)]
    part_b = [{"v": 100 + i} for i in range(7)]
    skipped = [{"v": 10_000, "skip": True}] * 3
    sent_a = put_records(ep, stream, [("k", json.dumps(d)) for d in part_a + skipped])
    agg = Aggregator()
    rec = Recorder(behave=agg)
    state = tmp_path / "s.db"
    mapping = mapping_for(arn, batch_size=3, tumbling_window_in_seconds=length,
                          filter_patterns=('{"data": {"skip": [{"exists": false}]}}',))
    async with function_host(rec) as host:
        config = config_for(mapping, ep, host.endpoint, state)
        async with running(config):
            await wait_for(lambda: sum(len(e["Records"]) for e in rec.events) >= 10, 30)
            await wait_for(lambda: (row(state, mapping.uuid)[1] or {}).get("through")
                           == sent_a[-1][1], 10, message="window progress not saved")
        checkpoint, window = row(state, mapping.uuid)
        assert checkpoint == "TRIM_HORIZON", "the checkpoint moved before the window closed"
        assert window is not None and window["state"] == {"sum": 55, "count": 10}
        first_run = len(rec.events)
        assert first_run >= 4 and agg.finals == []

        sent_b = await asyncio.to_thread(put_records, ep, stream,
                                         [("k", json.dumps(d)) for d in part_b])
        async with running(config):
            await wait_for(lambda: sum(len(e["Records"]) for e in rec.events) >= 17, 30)
            assert rec.events[first_run]["state"] == {"sum": 55, "count": 10}
            set_clock(clock, int((first_start + length + 2 - time.time()) * 1000))
            (sent_c,) = await asyncio.to_thread(put_records, ep, stream,
                                                [("k", json.dumps({"v": 5000}))])
            await wait_for(lambda: len(agg.finals) == 1, 30, message="no final invoke")
            await wait_for(lambda: row(state, mapping.uuid)[0] == sent_b[-1][1], 10,
                           message="checkpoint not moved after the final invoke")
            await wait_for(lambda: (row(state, mapping.uuid)[1] or {}).get("through")
                           == sent_c[1], 10)
    (final,) = agg.finals
    assert final["sum"] == sum(d["v"] for d in part_a + part_b)
    assert final["count"] == len(part_a) + len(part_b)
    assert final["window"] == {
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first_start)),
        "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first_start + length))}
    seen = [json.loads(s.data) for s in rec.seen]
    assert seen == part_a + part_b + [{"v": 5000}], "a record was lost, repeated or unfiltered"
    finals = [e for e in rec.events if e["isFinalInvokeForWindow"]]
    assert len(finals) == 1 and finals[0]["Records"] == []
    for event in rec.events:
        assert list(event) == EVENT_KEYS
        assert event["shardId"] == sent_a[0][0] and event["eventSourceARN"] == arn
        assert event["isWindowTerminatedEarly"] is False
        assert len(event["Records"]) <= 3
    last = rec.events[-1]  # the next window's first invoke starts from an empty state
    assert last["state"] == {} and not last["isFinalInvokeForWindow"]
    assert last["window"]["start"] == final["window"]["end"]
    assert counter(metrics.records_filtered, mapping.uuid) == 3


async def test_missing_state_fails_the_invoke_and_an_oversized_state_ends_the_window_early(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("wstate")
    arn = create_stream(ep, stream, shards=1)
    put_records(ep, stream, [("k", json.dumps({"v": i})) for i in range(4)])
    calls: list[dict[str, Any]] = []

    def behave(event: dict[str, Any], batch: list[Any]) -> Any:
        calls.append(event)
        if len(calls) == 1:
            return {"batchItemFailures": []}  # no state: a failed invocation
        if event["isFinalInvokeForWindow"]:
            return {"state": {}}
        return {"state": {"big": "x" * 1_100_000}}

    rec = Recorder(behave=behave)
    mapping = mapping_for(arn, batch_size=10, tumbling_window_in_seconds=1)
    async with function_host(rec) as host:
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: any(e["isFinalInvokeForWindow"] for e in calls), 30)
            assert counter(metrics.bad_responses, mapping.uuid) == 1
    first, retry, final = calls[:3]
    assert [r["kinesis"]["sequenceNumber"] for r in retry["Records"]] == [
        r["kinesis"]["sequenceNumber"] for r in first["Records"]]
    assert retry["state"] == {} and not retry["isFinalInvokeForWindow"]
    assert final["isFinalInvokeForWindow"] and final["isWindowTerminatedEarly"]
    assert final["Records"] == [] and len(final["state"]["big"]) == 1_100_000


async def test_a_window_closes_on_time_when_the_reader_is_at_the_tip(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("wtime")
    arn = create_stream(ep, stream, shards=1)
    sent = put_records(ep, stream, [("k", json.dumps({"v": i})) for i in range(5)])
    agg = Aggregator()
    rec = Recorder(behave=agg)
    state = tmp_path / "s.db"
    mapping = mapping_for(arn, batch_size=2, tumbling_window_in_seconds=1)
    async with function_host(rec) as host:
        async with running(config_for(mapping, ep, host.endpoint, state)):
            await wait_for(lambda: sum(f["count"] for f in agg.finals) == 5, 30,
                           message="windows did not close on time")
            await wait_for(lambda: row(state, mapping.uuid) == (sent[-1][1], None), 10)
    assert sum(f["sum"] for f in agg.finals) == sum(range(5))


async def test_resharding_closes_the_parents_window_and_children_start_fresh(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("wsplit")
    arn = create_stream(ep, stream, shards=1)
    kinesis = make_boto3_client("kinesis", ep)
    put_records(ep, stream, [(f"k{i}", json.dumps({"v": i})) for i in range(12)])
    agg = Aggregator()
    rec = Recorder(behave=agg)
    mapping = mapping_for(arn, batch_size=5, tumbling_window_in_seconds=900)
    async with function_host(rec) as host:
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 12, 30)
            parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
            start, end = (int(x) for x in (parent["HashKeyRange"]["StartingHashKey"],
                                           parent["HashKeyRange"]["EndingHashKey"]))
            await asyncio.to_thread(kinesis.split_shard, StreamName=stream,
                                    ShardToSplit=parent["ShardId"],
                                    NewStartingHashKey=str((start + end) // 2))
            await wait_for(lambda: kinesis.describe_stream_summary(StreamName=stream)[
                "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 30)
            await asyncio.to_thread(put_records, ep, stream,
                                    [(f"k{i}", json.dumps({"v": 1000})) for i in range(6)])
            await wait_for(lambda: len(rec.ok) >= 18, 30, message="children not read")
    parent_id = parent["ShardId"]
    parent_finals = [f for f in agg.finals if f["shard"] == parent_id]
    assert sum(f["sum"] for f in parent_finals) == sum(range(12))
    assert sum(f["count"] for f in parent_finals) == 12
    last_parent = max(i for i, e in enumerate(rec.events) if e["shardId"] == parent_id)
    assert rec.events[last_parent]["isFinalInvokeForWindow"]
    children = [e for e in rec.events if e["shardId"] != parent_id]
    assert children and all(not e["isFinalInvokeForWindow"] for e in children)
    assert all(json.loads(base64.b64decode(r["kinesis"]["data"]))["v"] == 1000
               for e in children for r in e["Records"])
    first_of_each = {e["shardId"]: e for e in reversed(children)}
    assert all(e["state"] == {} for e in first_of_each.values())
