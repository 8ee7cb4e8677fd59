"""The ordered watermark: only a prefix of done records is ever checkpointed."""

from __future__ import annotations

import asyncio

from poller.batching import Record
from poller.leases.sqlite import SqliteStore
from poller.processing.checkpoint import CheckpointWriter, ShardCheckpointer


def _records(n: int) -> list[Record]:
    return [Record(i, str(i), "k", 0.0, b"{}") for i in range(1, n + 1)]


async def test_watermark_advances_only_over_a_done_prefix(tmp_path: object) -> None:
    store = SqliteStore(f"{tmp_path}/state.db")
    await store.open()
    writer = CheckpointWriter(store, 0.01)
    cp = ShardCheckpointer(writer, "m", "shard-1")
    records = _records(6)
    cp.track(records)
    for i in (1, 3, 4):  # lanes finish out of order
        records[i].done = True
    cp.advance()
    assert cp.checkpoint is None and cp.pending == 6
    records[0].done = True
    cp.advance()
    assert cp.checkpoint == "2"
    records[2].done = True
    cp.advance()
    assert cp.checkpoint == "5" and cp.pending == 1
    await writer.flush()
    assert await store.load("m") == {"shard-1": "5"}
    await writer.close()
    await store.close()


async def test_backpressure_waits_until_records_are_done(tmp_path: object) -> None:
    store = SqliteStore(f"{tmp_path}/state.db")
    await store.open()
    writer = CheckpointWriter(store, 0.01)
    cp = ShardCheckpointer(writer, "m", "s")
    records = _records(4)
    cp.track(records)
    waiter = asyncio.ensure_future(cp.wait_below(2))
    await asyncio.sleep(0)
    assert not waiter.done()
    for r in records[:3]:
        r.done = True
    cp.advance()
    await asyncio.wait_for(waiter, 1)
    assert cp.pending == 1
    await writer.close()
    await store.close()


async def test_checkpoints_survive_reopen(tmp_path: object) -> None:
    path = f"{tmp_path}/state.db"
    store = SqliteStore(path)
    await store.open()
    await store.save([("m", "a", "10"), ("m", "b", "SHARD_END"), ("other", "a", "1")])
    await store.save([("m", "a", "11")])
    await store.close()
    again = SqliteStore(path)
    await again.open()
    assert await again.load("m") == {"a": "11", "b": "SHARD_END"}
    await again.close()
