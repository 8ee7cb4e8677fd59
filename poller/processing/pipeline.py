"""One shard's path from read records to invocations and back to its checkpoint."""

from __future__ import annotations

import asyncio

import structlog

from poller.config_model import TuningConfig
from poller.leases import SHARD_END
from poller.processing.checkpoint import CheckpointSink, ShardCheckpointer
from poller.processing.lanes import Lane
from poller.processing.processor import Processor, ShardContext, backoff, sleep_unless
from poller.records import Record

log = structlog.get_logger(__name__)


class ShardPipeline:
    """Lanes (ParallelizationFactor, per-key order) + processor + ordered checkpoint."""

    def __init__(self, ctx: ShardContext, processor: Processor, writer: CheckpointSink,
                 tuning: TuningConfig) -> None:
        mapping = ctx.mapping
        self.ctx = ctx
        self._processor = processor
        self._writer = writer
        self._tuning = tuning
        self._filtering = bool(mapping.filter_patterns)
        self.checkpointer = ShardCheckpointer(writer, mapping.uuid, ctx.shard_id)
        self.lanes = [Lane(mapping.batch_size, float(mapping.maximum_batching_window_in_seconds),
                           extra_bytes=ctx.extra_bytes)
                      for _ in range(mapping.parallelization_factor)]
        self._tasks = [asyncio.create_task(self._lane_loop(lane),
                                           name=f"lane-{mapping.uuid}-{ctx.shard_id}-{i}")
                       for i, lane in enumerate(self.lanes)]

    def put(self, records: list[Record]) -> None:
        """Hand over read records in shard order; records already ``done`` (filtered out) only
        hold their place for the checkpoint."""
        self.checkpointer.track(records)
        if self._filtering:  # only FilterCriteria hand over records that are already done
            live = [r for r in records if not r.done]
            if len(live) != len(records):
                self.checkpointer.advance()
                records = live
        lanes = self.lanes
        if len(lanes) == 1:
            lanes[0].put(records)
            return
        n = len(lanes)
        groups: list[list[Record]] = [[] for _ in range(n)]
        for r in records:
            groups[hash(r.key) % n].append(r)
        for lane, group in zip(lanes, groups, strict=True):
            lane.put(group)

    def polled(self, millis_behind: int | None) -> None:
        pass

    async def wait_capacity(self, limit: int) -> None:
        await self.checkpointer.wait_below(limit)

    async def finish(self) -> bool:
        """The shard ended: process what is buffered, then checkpoint SHARD_END (durably).
        False if stopped first."""
        for lane in self.lanes:
            lane.flush()
        waiter = asyncio.ensure_future(self.checkpointer.wait_empty())
        stop = asyncio.ensure_future(self.ctx.stopping.wait())
        try:
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stop.cancel()
        if self.checkpointer.pending:
            return False
        self.checkpointer.mark(SHARD_END)
        await self._writer.flush()
        return True

    async def stop(self) -> None:
        """Stop handing out batches; wait for the in-flight ones (the caller bounds the time)."""
        self.ctx.stopping.set()
        for lane in self.lanes:
            lane.close()
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        except asyncio.CancelledError:
            for t in self._tasks:
                t.cancel()
            raise

    def position(self) -> str | None:
        return self.checkpointer.checkpoint

    def cancel(self) -> None:
        for t in self._tasks:
            t.cancel()

    async def _lane_loop(self, lane: Lane) -> None:
        while True:
            batch = await lane.next_batch()
            if batch is None:
                return
            failures = 0
            while True:
                try:
                    completed = await self._processor.process(self.ctx, batch)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failures += 1
                    log.exception("lane_error", mapping=self.ctx.mapping.uuid,
                                  shard=self.ctx.shard_id, attempt=failures)
                    if await sleep_unless(backoff(failures, 0.5, 30.0), self.ctx.stopping):
                        return
            lane.batch_done()
            self.checkpointer.advance()
            if not completed:
                return
