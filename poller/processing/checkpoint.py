"""The ordered per-shard checkpoint watermark and the coalescing writer behind it.

A shard's checkpoint only moves to the highest position below which every record is done
(processed, filtered, or given up after its on-failure delivery), whatever order lanes finish in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

import structlog

from poller.leases import CheckpointStore
from poller.observability import metrics
from poller.records import Record

log = structlog.get_logger(__name__)


class CheckpointSink(Protocol):
    """Where a shard's checkpoints go: the sqlite writer below, or Kafka's committed offsets."""

    def set(self, mapping: str, shard: str, checkpoint: str) -> None: ...

    async def flush(self) -> None: ...


class CheckpointWriter:
    """Coalesces checkpoint updates and writes them in one transaction per flush interval."""

    def __init__(self, store: CheckpointStore, flush_seconds: float) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._dirty: dict[tuple[str, str], str] = {}
        self._windows: dict[tuple[str, str], str | None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="checkpoint-writer")

    def set(self, mapping: str, shard: str, checkpoint: str) -> None:
        self._dirty[(mapping, shard)] = checkpoint
        self._wake.set()

    def set_window(self, mapping: str, shard: str, window: str | None) -> None:
        """The shard's open tumbling window (JSON), None once closed; written together with
        checkpoints set in the same event-loop step."""
        self._windows[(mapping, shard)] = window
        self._wake.set()

    def discard(self, mapping: str, shard: str) -> None:
        """Drop the shard's checkpoint not written yet (its lease changed hands meanwhile)."""
        self._dirty.pop((mapping, shard), None)

    async def flush(self) -> None:
        async with self._lock:
            if not self._dirty and not self._windows:
                return
            items = [(m, s, c) for (m, s), c in self._dirty.items()]
            windows = [(m, s, w) for (m, s), w in self._windows.items()]
            self._dirty.clear()
            self._windows.clear()
            try:
                # shielded: a cancelled flusher must not drop checkpoints it already took
                if windows:
                    await asyncio.shield(self._store.save(items, windows))
                else:
                    await asyncio.shield(self._store.save(items))
            except asyncio.CancelledError:
                raise
            except Exception:
                for m, s, c in items:  # keep them for the next flush unless newer ones arrived
                    self._dirty.setdefault((m, s), c)
                for m, s, w in windows:
                    self._windows.setdefault((m, s), w)
                raise
            for m, _s, _c in items:
                metrics.checkpoints_written.labels(m).inc()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.error("checkpoint_write_failed", error=str(exc))
            await asyncio.sleep(self._flush_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class ShardCheckpointer:
    """Tracks one shard's records in read order and advances its watermark."""

    def __init__(self, writer: CheckpointSink, mapping: str, shard: str) -> None:
        self._writer = writer
        self._mapping = mapping
        self._shard = shard
        self._pending: deque[Record] = deque()
        self._changed = asyncio.Event()
        self.checkpoint: str | None = None
        self._inflight = metrics.inflight_records.labels(mapping, shard)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def track(self, records: list[Record]) -> None:
        self._pending.extend(records)
        self._inflight.set(len(self._pending))

    def advance(self) -> None:
        pending = self._pending
        last: Record | None = None
        while pending and pending[0].done:
            last = pending.popleft()
        if last is not None:
            self.checkpoint = last.seq
            self._writer.set(self._mapping, self._shard, last.seq)
            self._inflight.set(len(pending))
            self._changed.set()

    def mark(self, checkpoint: str) -> None:
        self.checkpoint = checkpoint
        self._writer.set(self._mapping, self._shard, checkpoint)

    async def wait_below(self, limit: int) -> None:
        """Backpressure: wait until fewer than ``limit`` records are in flight."""
        while len(self._pending) >= limit:
            self._changed.clear()
            await self._changed.wait()

    async def wait_empty(self) -> None:
        await self.wait_below(1)
