"""Lane batching: BatchSize, batching window (from the last invoke's end), flush and close."""

from __future__ import annotations

import asyncio
import time

from poller.batching import Record
from poller.processing.lanes import Lane


def _records(n: int, start: int = 0) -> list[Record]:
    return [Record(i, str(i), "k", 0.0, b'{"x":1}') for i in range(start, start + n)]


async def test_without_window_a_batch_is_whatever_is_buffered_up_to_batch_size() -> None:
    lane = Lane(batch_size=3, window_seconds=0)
    lane.put(_records(5))
    first = await lane.next_batch()
    second = await lane.next_batch()
    assert first is not None and [r.position for r in first] == [0, 1, 2]
    assert second is not None and [r.position for r in second] == [3, 4]


async def test_window_holds_a_partial_batch_until_it_elapses() -> None:
    lane = Lane(batch_size=100, window_seconds=0.3)
    lane.put(_records(2))
    t0 = time.monotonic()
    batch = await asyncio.wait_for(lane.next_batch(), 5)
    assert batch is not None and len(batch) == 2
    assert time.monotonic() - t0 >= 0.25


async def test_window_closes_early_when_batch_size_is_reached() -> None:
    lane = Lane(batch_size=3, window_seconds=30)
    lane.put(_records(2))
    task = asyncio.ensure_future(lane.next_batch())
    await asyncio.sleep(0.05)
    assert not task.done()
    lane.put(_records(2, start=2))
    batch = await asyncio.wait_for(task, 1)
    assert batch is not None and [r.position for r in batch] == [0, 1, 2]


async def test_window_closes_early_at_the_byte_limit() -> None:
    lane = Lane(batch_size=1000, window_seconds=30, max_bytes=100)
    lane.put(_records(20))
    batch = await asyncio.wait_for(lane.next_batch(), 1)
    assert batch is not None and 0 < len(batch) < 20


async def test_flush_hands_out_the_rest_without_waiting_then_ends() -> None:
    lane = Lane(batch_size=100, window_seconds=30)
    lane.put(_records(2))
    lane.flush()
    batch = await asyncio.wait_for(lane.next_batch(), 1)
    assert batch is not None and len(batch) == 2
    assert await asyncio.wait_for(lane.next_batch(), 1) is None


async def test_close_stops_handing_out_batches() -> None:
    lane = Lane(batch_size=10, window_seconds=0)
    task = asyncio.ensure_future(lane.next_batch())
    await asyncio.sleep(0)
    lane.close()
    assert await asyncio.wait_for(task, 1) is None
