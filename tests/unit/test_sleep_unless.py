"""sleep_unless: sleeps its delay, wakes early when the stop event is set, leaves nothing behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from poller.processing.processor import sleep_unless


async def test_sleeps_the_delay_when_not_stopped() -> None:
    stop = asyncio.Event()
    started = time.monotonic()
    assert await sleep_unless(0.05, stop) is False
    assert time.monotonic() - started >= 0.045
    assert not stop._waiters  # type: ignore[attr-defined]


async def test_wakes_when_stopped() -> None:
    stop = asyncio.Event()
    sleeper = asyncio.create_task(sleep_unless(60, stop))
    await asyncio.sleep(0)
    started = time.monotonic()
    stop.set()
    assert await asyncio.wait_for(sleeper, 10) is True
    assert time.monotonic() - started < 5
    assert await sleep_unless(60, stop) is True  # already stopped: no sleep


async def test_cancelled_sleep_leaves_no_waiter() -> None:
    stop = asyncio.Event()
    sleeper = asyncio.create_task(sleep_unless(60, stop))
    await asyncio.sleep(0)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert not stop._waiters  # type: ignore[attr-defined]
    waiter = asyncio.create_task(stop.wait())  # the event still works for others
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiter, 10) is True
