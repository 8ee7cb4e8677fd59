"""Lanes: ParallelizationFactor concurrent batches per shard, one key always in one lane.

A lane buffers records and hands out batches closed by BatchSize, the payload limit or the
batching window (which starts when the previous invocation of the lane finished)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from poller.batching import MAX_PAYLOAD_BYTES, take_batch
from poller.records import Record


class Lane:
    def __init__(self, batch_size: int, window_seconds: float,
                 max_bytes: int = MAX_PAYLOAD_BYTES, extra_bytes: int = 0) -> None:
        self.buffer: deque[Record] = deque()
        self._batch_size = batch_size
        self._window = window_seconds
        self._max_bytes = max_bytes
        self._extra_bytes = extra_bytes  # envelope bytes beyond ENVELOPE_BYTES
        self._bytes = 0  # tracked only with a batching window
        self._first_at: float | None = None
        self._last_done = 0.0
        self._wake = asyncio.Event()
        self._closed = False  # no new batches (stopping)
        self._flushing = False  # shard ended: hand out what is left without waiting

    def put(self, records: list[Record]) -> None:
        if not records:
            return
        self.buffer.extend(records)
        if self._window:
            self._bytes += sum(len(r.fragment) + 1 for r in records)
            if self._first_at is None:
                self._first_at = time.monotonic()
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def flush(self) -> None:
        self._flushing = True
        self._wake.set()

    def batch_done(self) -> None:
        self._last_done = time.monotonic()

    def _deadline(self) -> float | None:
        """None when a batch can be cut now; else the monotonic time the window closes."""
        if not self._window or self._flushing:
            return None
        if len(self.buffer) >= self._batch_size or self._bytes >= self._max_bytes:
            return None
        assert self._first_at is not None
        deadline = max(self._first_at, self._last_done) + self._window
        return None if time.monotonic() >= deadline else deadline

    async def next_batch(self) -> list[Record] | None:
        """The next batch, or None once the lane is closed (or flushed and empty)."""
        while True:
            if self._closed:
                return None
            if self.buffer:
                deadline = self._deadline()
                if deadline is None:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), deadline - time.monotonic())
                continue
            if self._flushing:
                return None
            self._wake.clear()
            await self._wake.wait()
        batch = take_batch(self.buffer, self._batch_size, self._max_bytes, self._extra_bytes)
        if self._window:
            if self.buffer:
                self._bytes -= sum(len(r.fragment) + 1 for r in batch)
                self._first_at = time.monotonic()
            else:
                self._bytes = 0
                self._first_at = None
        return batch
