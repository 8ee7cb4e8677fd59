"""Tumbling windows (TumblingWindowInSeconds): one shard's records grouped into fixed windows
aligned on their arrival time, with the function's ``state`` carried from one invocation of a
window to the next and a final invocation when the window closes.

A window closes when a record of a later window is read, when a read that reached the tip of the
stream (MillisBehindLatest 0) was made at least CLOSE_SLACK after the window's end and nothing of
it is left to invoke, when the shard ends (resharding), or early when the returned state is over
1 MB (``isWindowTerminatedEarly``; the rest of its time span starts a new window). Batches never
span windows. The checkpoint moves past a window's records only after its final invocation
succeeded; meanwhile the open window (bounds, state, last record reflected in the state) is
saved with the shard's checkpoint row after every invocation, so a restart resumes the window
after that record with that state: no record is counted twice in one window's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as json_str

import structlog

from poller.batching import ENVELOPE_BYTES, MAX_PAYLOAD_BYTES, build_payload, payload_size
from poller.config_model import TuningConfig
from poller.leases import SHARD_END
from poller.observability import metrics
from poller.processing.checkpoint import CheckpointWriter
from poller.processing.processor import Processor, ShardContext, backoff, sleep_unless
from poller.records import Record

log = structlog.get_logger(__name__)

MAX_STATE_BYTES = 1_048_576  # Lambda: 1 MB of state per shard
# a read that reached the stream's tip this long after a window's end has seen all its records
CLOSE_SLACK = 1.0


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Window:
    start: int  # epoch seconds, a multiple of the window length
    end: int
    state: bytes = b"{}"  # the state as JSON, passed to the next invocation unchanged
    through: str | None = None  # last record whose invocation returned ``state``

    def to_json(self) -> str:
        return json.dumps({"start": self.start, "end": self.end,
                           "state": json.loads(self.state), "through": self.through},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Window:
        d = json.loads(text)
        return cls(int(d["start"]), int(d["end"]),
                   json.dumps(d["state"], separators=(",", ":")).encode(), d.get("through"))


class WindowedPipeline:
    """A ShardSink for mappings with TumblingWindowInSeconds: one batch at a time, in order."""

    def __init__(self, ctx: ShardContext, processor: Processor, writer: CheckpointWriter,
                 tuning: TuningConfig, stream_arn: str, restored: Window | None = None,
                 windows: dict[str, Window] | None = None) -> None:
        mapping = ctx.mapping
        self.ctx = ctx
        self._processor = processor
        self._writer = writer
        self._length = mapping.tumbling_window_in_seconds
        self._batch_size = mapping.batch_size
        self._caught_up_at = 0.0  # wall clock of the latest read that reached the stream's tip
        self._shared = windows if windows is not None else {}  # survives reader restarts
        self.window = restored
        self.checkpoint: str | None = None
        self.buffer: deque[Record] = deque()
        self._batching_window = float(mapping.maximum_batching_window_in_seconds)
        self._first_at: float | None = None  # when the oldest buffered record was put
        self._last_done = 0.0  # when the previous invocation finished
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._flushing = False
        self._ended = False
        self._tail_fixed = (',"shardId":' + json_str(ctx.shard_id) + ',"eventSourceARN":'
                            + json_str(stream_arn)).encode()
        self._inflight = metrics.inflight_records.labels(mapping.uuid, ctx.shard_id)
        ctx.build = self._build
        ctx.size = self._size
        ctx.on_response = self._accept
        self._task = asyncio.create_task(self._loop(),
                                         name=f"window-{mapping.uuid}-{ctx.shard_id}")

    # --- ShardSink -------------------------------------------------------------------------
    def put(self, records: list[Record]) -> None:
        if records:
            if not self.buffer:
                self._first_at = time.monotonic()
            self.buffer.extend(records)
            self._inflight.set(len(self.buffer))
            self._wake.set()

    def polled(self, millis_behind: int | None) -> None:
        if millis_behind == 0:
            self._caught_up_at = time.time()
            if self.window is not None and self._caught_up_at >= self.window.end + CLOSE_SLACK:
                self._wake.set()

    async def wait_capacity(self, limit: int) -> None:
        while len(self.buffer) >= limit:
            self._idle.clear()
            await self._idle.wait()

    async def finish(self) -> bool:
        """The shard ended: invoke what is buffered, close the window, checkpoint SHARD_END."""
        self._flushing = True
        self._wake.set()
        stop = asyncio.ensure_future(self.ctx.stopping.wait())
        try:
            await asyncio.wait({self._task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not self._ended:
            return False
        self._set_checkpoint(SHARD_END)
        await self._writer.flush()
        return True

    async def stop(self) -> None:
        self.ctx.stopping.set()
        self._wake.set()
        try:
            await asyncio.gather(self._task, return_exceptions=True)
        except asyncio.CancelledError:
            self._task.cancel()
            raise

    def cancel(self) -> None:
        self._task.cancel()

    def position(self) -> str | None:
        """Where a restarted reader resumes: after the last record in the open window's state."""
        if self.window is not None and self.window.through is not None:
            return self.window.through
        return self.checkpoint

    # --- payloads ----------------------------------------------------------------------------
    def _tail(self, final: bool = False, early: bool = False) -> bytes:
        w = self.window
        assert w is not None
        return b"".join((b',"window":{"start":"', _iso(w.start).encode(), b'","end":"',
                         _iso(w.end).encode(), b'"},"state":', w.state, self._tail_fixed,
                         b',"isFinalInvokeForWindow":', b"true" if final else b"false",
                         b',"isWindowTerminatedEarly":', b"true" if early else b"false"))

    def _build(self, records: Sequence[Record], start: int, end: int) -> bytes:
        return build_payload(records, start, end, self._tail())

    def _size(self, records: Sequence[Record], start: int, end: int) -> int:
        return payload_size(records, start, end, len(self._tail()))

    def _accept(self, payload: bytes) -> bool:
        try:
            doc = json.loads(payload) if payload.strip() else None
        except ValueError:
            return False
        if not isinstance(doc, dict) or not isinstance(doc.get("state"), dict):
            return False
        assert self.window is not None
        self.window.state = json.dumps(doc["state"], separators=(",", ":"),
                                       ensure_ascii=False).encode()
        return True

    # --- the loop ----------------------------------------------------------------------------
    def _window_of(self, r: Record) -> int:
        return int(r.arrival // self._length) * self._length

    def _set_checkpoint(self, position: str) -> None:
        self.checkpoint = position
        self._writer.set(self.ctx.mapping.uuid, self.ctx.shard_id, position)

    def _save_window(self) -> None:
        w = self.window
        if w is None:
            self._shared.pop(self.ctx.shard_id, None)
        else:
            self._shared[self.ctx.shard_id] = w
        self._writer.set_window(self.ctx.mapping.uuid, self.ctx.shard_id,
                                None if w is None else w.to_json())

    def _skip_filtered(self) -> None:
        """Filtered records ahead of everything else are done; with no window open the
        checkpoint passes them now, else they join the window's span."""
        last: Record | None = None
        while self.buffer and self.buffer[0].done:
            last = self.buffer.popleft()
        if last is None:
            return
        if self.window is None:
            self._set_checkpoint(last.seq)
        else:
            self.window.through = last.seq
            self._save_window()

    def _gathering(self, batch: list[Record], consumed: int) -> float | None:
        """MaximumBatchingWindowInSeconds: the monotonic time to wait for more records of this
        window (the batching window starts when the previous invocation finished), or None."""
        if (not self._batching_window or self._flushing or len(batch) >= self._batch_size
                or consumed < len(self.buffer)):  # full, or a later window's record is here
            return None
        deadline = max(self._first_at or 0.0, self._last_done) + self._batching_window
        return deadline if time.monotonic() < deadline else None

    def _cut(self) -> tuple[list[Record], int] | None:
        """The next batch of the open window's records (and how many buffered records it
        consumed, filtered ones included); None if the head is a later window."""
        assert self.window is not None
        buf = self.buffer
        tail_bytes = len(self._tail())
        size = ENVELOPE_BYTES + tail_bytes - 1
        batch: list[Record] = []
        consumed = 0
        for r in buf:
            if r.done:
                consumed += 1
                continue
            if self._window_of(r) > self.window.start:
                break
            grown = size + 1 + len(r.fragment)
            if batch and (grown > MAX_PAYLOAD_BYTES or len(batch) >= self._batch_size):
                break
            batch.append(r)
            size = grown
            consumed += 1
        if not batch:
            return None
        while consumed < len(buf) and buf[consumed].done:  # filtered records right after it
            consumed += 1
        return batch, consumed

    async def _close(self, early: bool = False) -> bool:
        """The final invocation; then the checkpoint passes the window. False if stopped."""
        w = self.window
        assert w is not None
        payload = build_payload([], 0, 0, self._tail(final=True, early=early))
        if not await self._processor.invoke_final(self.ctx, payload):
            return False
        log.info("window_closed", mapping=self.ctx.mapping.uuid, shard=self.ctx.shard_id,
                 start=_iso(w.start), end=_iso(w.end), terminated_early=early)
        self.window = None
        if w.through is not None:
            self._set_checkpoint(w.through)
        self._save_window()
        return True

    async def _wait(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    async def _wait_until(self, deadline: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))

    async def _loop(self) -> None:
        stopping = self.ctx.stopping
        failures = 0
        while not stopping.is_set():
            self._skip_filtered()
            self._idle.set()
            w = self.window
            try:
                if w is None:
                    if self.buffer:
                        start = self._window_of(self.buffer[0])
                        self.window = Window(start, start + self._length)
                        continue
                    if self._flushing:
                        self._ended = True
                        return
                    await self._wait()
                    continue
                cut = self._cut() if self.buffer else None
                if cut is not None:
                    batch, consumed = cut
                    deadline = self._gathering(batch, consumed)
                    if deadline is not None:
                        await self._wait_until(deadline)
                        continue
                    if not await self._processor.process(self.ctx, batch):
                        return
                    self._last_done = time.monotonic()
                    last = self.buffer[consumed - 1]
                    for _ in range(consumed):
                        self.buffer.popleft()
                    self._first_at = time.monotonic() if self.buffer else None
                    self._inflight.set(len(self.buffer))
                    w.through = last.seq
                    self._save_window()
                    if len(w.state) > MAX_STATE_BYTES:
                        log.warning("window_state_too_large", mapping=self.ctx.mapping.uuid,
                                    shard=self.ctx.shard_id, state_bytes=len(w.state),
                                    limit=MAX_STATE_BYTES)
                        if not await self._close(early=True):
                            return
                    continue
                if self.buffer or self._flushing:  # a later window's record, or the shard end
                    if not await self._close():
                        return
                    continue
                if self._caught_up_at >= w.end + CLOSE_SLACK:
                    if not await self._close():
                        return
                    continue
                await self._wait()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("window_error", mapping=self.ctx.mapping.uuid,
                              shard=self.ctx.shard_id, attempt=failures)
                if await sleep_unless(backoff(failures, 0.5, 30.0), stopping):
                    return
