"""FilterCriteria end to end on a real Kinesis server: records no filter matches are never
invoked, are counted as filtered, and never hold back the checkpoint."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from poller.sources.shards import ShardCoordinator
from tests.helpers import KinesisEndpoint, create_stream, put_records, unique_name, wait_for
from tests.integration.pipeline_harness import (
    Recorder,
    config_for,
    counter,
    function_host,
    mapping_for,
    metrics,
    running,
)


def stored_checkpoint(state: Path, mapping: str, shard: str) -> str | None:
    with sqlite3.connect(state) as conn:
        row = conn.execute("SELECT checkpoint FROM checkpoints WHERE mapping = ? AND shard = ?",
                           (mapping, shard)).fetchone()
    return None if row is None else str(row[0])


async def test_filtered_records_are_never_invoked_and_pass_the_checkpoint(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("filter")
    arn = create_stream(ep, stream, shards=1)
    records: list[tuple[str, str]] = []
    for i in range(40):
        if i % 5 == 4:
            records.append(("vip-1", f"not json {i}"))  # matches only the partitionKey filter
        else:
            records.append((f"k{i}", json.dumps({"kind": "order" if i % 2 else "refund",
                                                 "amount": i})))
    # the stream ends with records every filter rejects: the checkpoint must still pass them
    records += [("k", json.dumps({"kind": "refund", "amount": 1})), ("k", "plain text")] * 5
    sent = put_records(ep, stream, records)
    expected = [data for key, data in records
                if key.startswith("vip-")
                or (data.startswith("{") and json.loads(data)["kind"] == "order"
                    and json.loads(data)["amount"] >= 10)]
    patterns = ('{"data": {"kind": ["order"], "amount": [{"numeric": [">=", 10]}]}}',
                '{"partitionKey": [{"prefix": "vip-"}]}',
                '{"data": {"kind": [{"equals-ignore-case": "NEVER"}]}}')
    rec = Recorder()
    state = tmp_path / "s.db"
    mapping = mapping_for(arn, batch_size=4, filter_patterns=patterns)
    shard = sent[0][0]
    async with function_host(rec) as host:
        async with running(config_for(mapping, ep, host.endpoint, state)) as service:
            await wait_for(lambda: len(rec.ok) >= len(expected), 60,
                           message="matching records did not arrive")
            runner = service.mappings[mapping.uuid]
            assert isinstance(runner, ShardCoordinator)
            await wait_for(lambda: runner.readers[shard][1].position() == sent[-1][1], 30,
                           message="the checkpoint did not pass the trailing filtered records")
        assert counter(metrics.records_filtered, mapping.uuid) == len(records) - len(expected)
        assert counter(metrics.records_invoked, mapping.uuid) == len(expected)
    assert [s.data.decode() for s in rec.seen] == expected
    assert all(len(e["Records"]) <= 4 for e in rec.events)
    assert stored_checkpoint(state, mapping.uuid, shard) == sent[-1][1]


async def test_a_fully_filtered_stream_invokes_nothing_and_checkpoints_its_end(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("filterall")
    arn = create_stream(ep, stream, shards=1)
    sent = put_records(ep, stream, [("k", json.dumps({"v": i})) for i in range(12)])
    rec = Recorder()
    state = tmp_path / "s.db"
    mapping = mapping_for(arn, filter_patterns=('{"data": {"v": [{"numeric": [">", 100]}]}}',))
    async with function_host(rec) as host:
        async with running(config_for(mapping, ep, host.endpoint, state)):
            await wait_for(lambda: counter(metrics.records_filtered, mapping.uuid) == 12, 30)
            await wait_for(lambda: stored_checkpoint(state, mapping.uuid, sent[0][0])
                           == sent[-1][1], 30, message="checkpoint not written past filtered")
    assert rec.events == []
