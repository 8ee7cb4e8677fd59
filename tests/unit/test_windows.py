"""Tumbling-window pieces that need no servers: the saved window, the event tail the batcher
appends, the sqlite schema upgrade, and the window loop driven by a fake invoker."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from poller import batching
from poller.config_model import Mapping, TuningConfig
from poller.invokers import InvokeResult
from poller.leases import SHARD_END
from poller.leases.sqlite import SqliteStore
from poller.processing.checkpoint import CheckpointWriter
from poller.processing.processor import Processor, ShardContext
from poller.processing.windows import Window, WindowedPipeline
from tests.helpers import wait_for

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s"


def test_window_round_trips_through_json() -> None:
    w = Window(1_700_000_100, 1_700_000_160, b'{"a":[1,"\\u00e9"]}', "4960001")
    back = Window.from_json(w.to_json())
    assert (back.start, back.end, back.through) == (w.start, w.end, w.through)
    assert json.loads(back.state) == {"a": [1, "é"]}


@pytest.mark.parametrize("name", ["python", "cython"])
def test_an_empty_batch_with_a_tail_is_a_valid_event(name: str) -> None:
    mod = batching.pure if name == "python" else batching.extension
    if mod is None:
        pytest.skip("Cython batcher not built")
    tail = b',"state":{"n":1},"isFinalInvokeForWindow":true'
    payload = mod.build_payload([], 0, 0, tail)
    assert json.loads(payload) == {"Records": [], "state": {"n": 1},
                                   "isFinalInvokeForWindow": True}
    assert mod.payload_size([], 0, 0, len(tail)) == len(payload)


def test_an_old_state_file_gains_the_window_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE checkpoints (mapping TEXT NOT NULL, shard TEXT NOT NULL, "
                     "checkpoint TEXT NOT NULL, updated_at REAL NOT NULL, "
                     "PRIMARY KEY (mapping, shard))")
        conn.execute("INSERT INTO checkpoints VALUES ('m', 's0', '42', 1.0)")

    async def run() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        store = SqliteStore(str(path))
        await store.open()
        try:
            before = await store.load("m")
            await store.save([("m", "s0", "43")], [("m", "s0", '{"w":1}'), ("m", "s1", "{}")])
            windows = await store.load_windows("m")
            await store.save([], [("m", "s0", None)])
            return before, windows, await store.load_windows("m") | await store.load("m")
        finally:
            await store.close()

    before, windows, after = asyncio.run(run())
    assert before == {"s0": "42"}
    assert windows == {"s0": '{"w":1}', "s1": "{}"}
    assert after == {"s1": "TRIM_HORIZON", "s0": "43"}


class FakeInvoker:
    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.events: list[dict[str, Any]] = []

    async def invoke(self, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        self.events.append(event)
        return InvokeResult(200, json.dumps(self.respond(event)).encode())

    async def close(self) -> None:
        pass


class MemoryStore:
    def __init__(self) -> None:
        self.checkpoints: dict[str, str] = {}
        self.windows: dict[str, str | None] = {}

    async def load(self, mapping: str) -> dict[str, str]:
        return dict(self.checkpoints)

    async def load_windows(self, mapping: str) -> dict[str, str]:
        return {s: w for s, w in self.windows.items() if w is not None}

    async def save(self, items: list[tuple[str, str, str]],
                   windows: list[tuple[str, str, str | None]] | None = None) -> None:
        for _m, s, c in items:
            self.checkpoints[s] = c
        for _m, s, w in windows or []:
            self.windows[s] = w

    async def close(self) -> None:
        pass


def records(arrivals: list[float]) -> list[Any]:
    out = []
    for i, arrival in enumerate(arrivals):
        seq = str(1000 + i)
        out.append(batching.Record(int(seq), seq, "k", arrival, json.dumps({"i": i}).encode()))
    return out


async def test_batches_never_span_windows_and_a_later_record_closes_the_window() -> None:
    mapping = Mapping(uuid="m", event_source_arn=ARN, function_name="f", batch_size=10,
                      tumbling_window_in_seconds=10)
    invoker = FakeInvoker(lambda e: {"state": {"n": e["state"].get("n", 0) + len(e["Records"])}})
    store = MemoryStore()
    writer = CheckpointWriter(store, 0.0)  # type: ignore[arg-type]
    ctx = ShardContext(mapping, "shardId-0", "KinesisBatchInfo", lambda r: {})
    pipe = WindowedPipeline(ctx, Processor(mapping, invoker, None, TuningConfig()),  # type: ignore[arg-type]
                            writer, TuningConfig(), ARN)
    recs = records([100.0, 101.0, 109.9, 110.0, 111.0])
    recs[1].done = True  # filtered out: part of the window's span, never invoked
    pipe.put(recs)
    assert await pipe.finish()
    await writer.flush()
    kinds = [(len(e["Records"]), e["window"]["start"], e["isFinalInvokeForWindow"])
             for e in invoker.events]
    assert kinds == [(2, "1970-01-01T00:01:40Z", False), (0, "1970-01-01T00:01:40Z", True),
                     (2, "1970-01-01T00:01:50Z", False), (0, "1970-01-01T00:01:50Z", True)]
    assert invoker.events[1]["state"] == {"n": 2}
    assert invoker.events[2]["state"] == {}
    assert store.checkpoints["shardId-0"] == SHARD_END
    assert store.windows["shardId-0"] is None
    await pipe.stop()


@pytest.mark.parametrize("batching_window", [0, 5])
async def test_the_batching_window_gathers_records_of_one_window(batching_window: int) -> None:
    mapping = Mapping(uuid="m", event_source_arn=ARN, function_name="f", batch_size=3,
                      tumbling_window_in_seconds=60,
                      maximum_batching_window_in_seconds=batching_window)
    invoker = FakeInvoker(lambda e: {"state": {}})
    writer = CheckpointWriter(MemoryStore(), 0.0)  # type: ignore[arg-type]
    ctx = ShardContext(mapping, "shardId-0", "KinesisBatchInfo", lambda r: {})
    pipe = WindowedPipeline(ctx, Processor(mapping, invoker, None, TuningConfig()),  # type: ignore[arg-type]
                            writer, TuningConfig(), ARN)
    recs = records([120.0, 121.0, 122.0])
    pipe.put(recs[:2])
    for _ in range(10):  # let the window loop run until it waits
        await asyncio.sleep(0)
    if batching_window:
        assert invoker.events == []
        pipe.put(recs[2:])
        await wait_for(lambda: len(invoker.events) == 1, 5)
        assert len(invoker.events[0]["Records"]) == 3
    else:
        assert [len(e["Records"]) for e in invoker.events] == [2]
    await pipe.stop()


async def test_a_failing_final_invoke_is_retried_then_given_up_per_maximum_retry_attempts(
        ) -> None:
    mapping = Mapping(uuid="m", event_source_arn=ARN, function_name="f", batch_size=10,
                      tumbling_window_in_seconds=10, maximum_retry_attempts=2)
    tuning = TuningConfig(retry_base_seconds=0.001, retry_max_seconds=0.002)

    class FailingFinal(FakeInvoker):
        async def invoke(self, payload: bytes) -> InvokeResult:
            result = await super().invoke(payload)
            if self.events[-1]["isFinalInvokeForWindow"]:
                return InvokeResult(200, b'{"errorMessage":"boom"}', function_error="Unhandled")
            return result

    invoker = FailingFinal(lambda e: {"state": {"n": 1}})
    store = MemoryStore()
    writer = CheckpointWriter(store, 0.0)  # type: ignore[arg-type]
    ctx = ShardContext(mapping, "shardId-0", "KinesisBatchInfo", lambda r: {})
    pipe = WindowedPipeline(ctx, Processor(mapping, invoker, None, tuning),  # type: ignore[arg-type]
                            writer, tuning, ARN)
    pipe.put(records([100.0]))
    assert await pipe.finish()
    finals = [e for e in invoker.events if e["isFinalInvokeForWindow"]]
    assert len(finals) == 3 and all(e["state"] == {"n": 1} for e in finals)
    assert store.checkpoints["shardId-0"] == SHARD_END
    await pipe.stop()
