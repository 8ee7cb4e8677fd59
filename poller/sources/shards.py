"""Shard-based stream sources (Kinesis, DynamoDB Streams): shard discovery, lineage (parents
before children), iterators, GetRecords, throttling backoff, restarts of failed readers.

What differs per source lives in a ``ShardApi`` adapter (poller.sources.kinesis,
poller.sources.dynamodb_streams); data-plane calls go through poller.awsjson (raw JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from poller.awsjson import AwsError
from poller.config_model import Mapping, TuningConfig
from poller.filtering import FilterSet
from poller.leases import AT_TIMESTAMP_PREFIX, SHARD_END, TRIM_HORIZON
from poller.observability import metrics
from poller.processing.processor import backoff, sleep_unless
from poller.records import Record
from poller.sources import ShardSink

log = structlog.get_logger(__name__)

STALE_POLL_SECONDS = 60.0  # readiness fails when a shard has not been read for this long
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
FATAL_CODES = frozenset({"AccessDeniedException", "UnrecognizedClientException",
                         "InvalidSignatureException", "IncompleteSignature",
                         "InvalidClientTokenId"})


class Encoder(Protocol):
    def encode(self, raw: Sequence[dict[str, Any]]) -> list[Record]: ...


class ShardApi(Protocol):
    """One stream's data plane in Kinesis's terms; shards are listed in ListShards shape
    (ShardId, ParentShardId, AdjacentParentShardId, SequenceNumberRange)."""

    max_records: int  # GetRecords Limit cap
    supports_at_timestamp: bool
    min_poll_interval: float  # at most this many calls/s/shard
    idle_poll_interval: float  # cadence when caught up
    problem: str | None  # set by list_shards when the stream can no longer deliver records

    async def list_shards(self) -> list[dict[str, Any]]: ...

    async def get_shard_iterator(self, shard_id: str, iterator_type: str,
                                 sequence_number: str | None = None,
                                 timestamp: float | None = None) -> str | None: ...

    async def get_records(self, iterator: str, limit: int) -> dict[str, Any]: ...

    def encoder(self, shard_id: str) -> Encoder: ...

    def filter(self, filters: FilterSet, encoder: Any,
               raw: list[dict[str, Any]]) -> tuple[list[Record], int]:
        """Encode ``raw`` in order; records no filter matches come back ``done`` (the
        checkpoint passes them, they are never batched). Returns (records, filtered count)."""
        ...


@dataclass
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    closed: bool  # has an EndingSequenceNumber


class MappingStatus:
    """Mapping state as AWS names it, plus a reason; logged once per change."""

    STATES = ("Creating", "Enabled", "Disabled", "Problem")

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping
        self.state = ""
        self.reason = ""
        self.set("Creating", "starting")

    def set(self, state: str, reason: str) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        level = log.warning if state == "Problem" else log.info
        level("mapping_state", mapping=self.mapping, state=state, reason=reason)
        self.state, self.reason = state, reason
        for s in self.STATES:
            metrics.mapping_state.labels(self.mapping, s).set(1 if s == state else 0)


@dataclass(eq=False)
class ShardReader:
    api: ShardApi
    mapping: Mapping
    shard_id: str
    sink: ShardSink
    encoder: Encoder
    start: str  # checkpoint sequence number or a sentinel (TRIM_HORIZON, AT_TIMESTAMP:<ts>, LATEST)
    tuning: TuningConfig
    stopping: asyncio.Event
    on_children: Callable[[list[dict[str, Any]]], None]
    last_poll: float = field(default_factory=time.monotonic)
    last_seq: str | None = None
    ended: bool = False
    polls: int = 0  # successful GetRecords calls
    behind: int | None = None  # MillisBehindLatest of the latest read
    filters: FilterSet | None = None

    def __post_init__(self) -> None:
        labels = (self.mapping.uuid, self.shard_id)
        self._polled = metrics.records_polled.labels(*labels)
        self._filtered = metrics.records_filtered.labels(*labels)
        self._behind = metrics.millis_behind_latest.labels(*labels)
        metrics.seconds_since_last_poll.labels(*labels).set_function(
            lambda: time.monotonic() - self.last_poll)
        limit = 2 * self.mapping.batch_size * self.mapping.parallelization_factor
        self.read_limit = min(self.api.max_records, max(1000, limit))
        uuid = self.mapping.uuid
        self._errors = {k: metrics.poll_errors.labels(uuid, k) for k in
                        ("throttled", "expired_iterator", "not_found", "error")}
        self._throttles = metrics.throttles.labels(uuid, "source")

    async def _iterator(self) -> str | None:
        if self.last_seq is not None:
            return await self.api.get_shard_iterator(
                self.shard_id, "AFTER_SEQUENCE_NUMBER", self.last_seq)
        start = self.start
        if start.startswith(AT_TIMESTAMP_PREFIX):
            return await self.api.get_shard_iterator(
                self.shard_id, "AT_TIMESTAMP", timestamp=float(start[len(AT_TIMESTAMP_PREFIX):]))
        if start in (TRIM_HORIZON, "LATEST"):
            return await self.api.get_shard_iterator(self.shard_id, start)
        return await self.api.get_shard_iterator(self.shard_id, "AFTER_SEQUENCE_NUMBER", start)

    async def run(self) -> None:
        """Read until the shard ends (returns after SHARD_END is checkpointed) or stopping."""
        iterator: str | None = None
        transient = 0
        last_call = 0.0
        last_data = -math.inf  # when the last non-empty read returned
        min_interval = self.api.min_poll_interval
        while not self.stopping.is_set():
            try:
                if iterator is None:
                    iterator = await self._iterator()
                    if iterator is None:
                        await self._end([])
                        return
                await self.sink.wait_capacity(self.read_limit)
                wait = last_call + min_interval - time.monotonic()
                if wait > 0 and await sleep_unless(wait, self.stopping):
                    return
                last_call = time.monotonic()
                resp = await self.api.get_records(iterator, self.read_limit)
            except AwsError as exc:
                transient += 1
                if exc.code == "ExpiredIteratorException":
                    self._errors["expired_iterator"].inc()
                    log.info("iterator_expired", mapping=self.mapping.uuid, shard=self.shard_id)
                    iterator = None
                    transient = 0
                    continue
                if exc.code in NOT_FOUND_CODES or exc.code in FATAL_CODES:
                    self._errors["not_found"].inc()
                    raise
                if exc.code == "TrimmedDataAccessException" or (
                        exc.code == "InvalidArgumentException" and "trim" in exc.message.lower()):
                    log.warning("checkpoint_trimmed", mapping=self.mapping.uuid,
                                shard=self.shard_id, error=str(exc))
                    self.last_seq = None
                    self.start = TRIM_HORIZON
                    iterator = None
                    continue
                if exc.throttled:
                    self._errors["throttled"].inc()
                    self._throttles.inc()
                else:
                    self._errors["error"].inc()
                    log.warning("get_records_failed", mapping=self.mapping.uuid,
                                shard=self.shard_id, error=str(exc), attempt=transient)
                if await sleep_unless(backoff(transient, self.tuning.throttle_base_seconds,
                                              self.tuning.throttle_max_seconds), self.stopping):
                    return
                continue
            transient = 0
            self.last_poll = time.monotonic()
            self.polls += 1
            raw = resp.get("Records") or []
            if raw:
                self._polled.inc(len(raw))
                if self.filters is None:
                    records = self.encoder.encode(raw)
                else:
                    records, filtered = self.api.filter(self.filters, self.encoder, raw)
                    if filtered:
                        self._filtered.inc(filtered)
                self.last_seq = records[-1].seq
                self.sink.put(records)
            behind = resp.get("MillisBehindLatest")
            self.behind = behind
            if behind is not None:
                self._behind.set(behind)
            self.sink.polled(behind)
            iterator = resp.get("NextShardIterator")
            if not iterator:
                await self._end(resp.get("ChildShards") or [])
                return
            if raw:
                last_data = self.last_poll
            if not raw and not behind:
                idle = self.api.idle_poll_interval
                # a shard that had records within the idle interval keeps the busy cadence
                # (records arriving a few per second are read within ~0.2 s, not up to 1 s
                # later); quiet shards poll once per idle interval
                delay = (max(min_interval, idle / 5) if self.last_poll - last_data < idle
                         else idle * random.uniform(0.9, 1.1))
                if await sleep_unless(delay, self.stopping):
                    return

    async def _end(self, children: list[dict[str, Any]]) -> None:
        log.info("shard_end", mapping=self.mapping.uuid, shard=self.shard_id,
                 children=[c.get("ShardId") for c in children])
        if await self.sink.finish():
            self.ended = True
            self.on_children(children)


class ShardCoordinator:
    """Runs one stream mapping: discovers shards, starts a reader per ready shard, restarts
    failed readers, and starts children once their parents reached SHARD_END."""

    def __init__(self, mapping: Mapping, api: ShardApi, tuning: TuningConfig,
                 checkpoints: dict[str, str], make_sink: Callable[[str], ShardSink],
                 initialize: Callable[[dict[str, str]], None],
                 watchdog_seconds: float = 0.0) -> None:
        self.mapping = mapping
        self.api = api
        self.tuning = tuning
        self.checkpoints = checkpoints  # shard -> checkpoint/sentinel, as loaded from the store
        self._make_sink = make_sink
        self._initialize = initialize  # persists first-start positions
        self.shards: dict[str, ShardInfo] = {}
        self.readers: dict[str, tuple[ShardReader, ShardSink, asyncio.Task[None]]] = {}
        self.status = MappingStatus(mapping.uuid)
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.filters = FilterSet(mapping.filter_patterns) if mapping.filter_patterns else None
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self.last_discovery = 0.0
        self._latest: set[str] = set()  # shards read from LATEST in this first run
        # shards this replica holds leases for (None: all, the single-replica sqlite store)
        self.owned: set[str] | None = None
        self.watchdog_seconds = watchdog_seconds  # 0: off
        self._progress: dict[str, tuple[str | None, float]] = {}  # position, since
        self._restarting: set[asyncio.Task[None]] = set()
        self._pausing: set[str] = set()  # readers being stopped: not restarted until done

    @property
    def polling(self) -> bool:
        """Enabled, and no shard reader has gone without a successful read for too long."""
        if self.status.state != "Enabled":
            return False
        stale = time.monotonic() - max(STALE_POLL_SECONDS, 10 * self.tuning.idle_poll_seconds)
        return all(reader.last_poll >= stale for reader, _s, _t in self.readers.values())

    def _on_children(self, children: list[dict[str, Any]]) -> None:
        for child in children:
            sid = child.get("ShardId")
            if sid and sid not in self.shards:
                parents = tuple(child.get("ParentShards") or ())
                self.shards[sid] = ShardInfo(sid, parents, closed=False)
        self._wake.set()

    def _first_start(self, listed: list[ShardInfo]) -> None:
        """Resolve StartingPosition for the shards that exist when the mapping first starts."""
        m = self.mapping
        initial: dict[str, str] = {}
        now = time.time()
        for shard in listed:
            if m.starting_position == "TRIM_HORIZON":
                initial[shard.shard_id] = TRIM_HORIZON
            elif m.starting_position == "AT_TIMESTAMP":
                # config allows AT_TIMESTAMP only where the API supports it
                initial[shard.shard_id] = f"{AT_TIMESTAMP_PREFIX}{m.starting_position_timestamp}"
            elif shard.closed:  # LATEST: history in closed shards is before "now"
                initial[shard.shard_id] = SHARD_END
            elif not self.api.supports_at_timestamp:  # DynamoDB Streams: LATEST as such
                initial[shard.shard_id] = "LATEST"
            else:  # read from LATEST now; after a restart, from the time the mapping started
                initial[shard.shard_id] = f"{AT_TIMESTAMP_PREFIX}{now}"
                self._latest.add(shard.shard_id)
        self.checkpoints.update(initial)
        self._initialize(initial)

    async def discover(self) -> None:
        raw = await self.api.list_shards()
        listed = [ShardInfo(s["ShardId"],
                            tuple(p for p in (s.get("ParentShardId"),
                                              s.get("AdjacentParentShardId")) if p),
                            closed="EndingSequenceNumber" in s.get("SequenceNumberRange", {}))
                  for s in raw]
        if not self.checkpoints:
            self._first_start(listed)
        for info in listed:
            self.shards[info.shard_id] = info
        self.last_discovery = time.monotonic()
        metrics.shards_owned.labels(self.mapping.uuid).set(len(self.readers))

    def _ready(self, info: ShardInfo) -> bool:
        for parent in info.parents:
            if parent in self.shards and self.checkpoints.get(parent) != SHARD_END:
                return False
        return True

    def _start_position(self, shard_id: str) -> str:
        if shard_id in self._latest:
            self._latest.discard(shard_id)
            return "LATEST"
        cp = self.checkpoints.get(shard_id)
        if cp is not None:
            return cp
        return TRIM_HORIZON  # a shard born after the mapping started (child) is read whole

    def _reconcile(self) -> None:
        now = time.monotonic()
        for sid in sorted(self.shards):
            if sid in self.readers or self.checkpoints.get(sid) == SHARD_END:
                continue
            if (self.owned is not None and sid not in self.owned) or sid in self._pausing:
                continue
            if self._retry_at.get(sid, 0.0) > now:
                continue
            info = self.shards[sid]
            if not self._ready(info):
                continue
            self._start_reader(sid)

    def _start_reader(self, sid: str) -> None:
        sink = self._make_sink(sid)
        m = self.mapping
        reader = ShardReader(self.api, m, sid, sink, self.api.encoder(sid),
                             self._start_position(sid), self.tuning, self.stopping,
                             self._on_children, filters=self.filters)
        task = asyncio.create_task(self._run_reader(reader, sink), name=f"shard-{m.uuid}-{sid}")
        self.readers[sid] = (reader, sink, task)
        metrics.shards_owned.labels(m.uuid).set(len(self.readers))
        log.info("shard_started", mapping=m.uuid, shard=sid, position=reader.start)

    async def _run_reader(self, reader: ShardReader, sink: ShardSink) -> None:
        sid = reader.shard_id
        try:
            await reader.run()
            if reader.ended:
                self.checkpoints[sid] = SHARD_END
                self._failures.pop(sid, None)
                for gauge in (metrics.seconds_since_last_poll, metrics.millis_behind_latest,
                              metrics.iterator_age, metrics.inflight_records):
                    with contextlib.suppress(KeyError):
                        gauge.remove(self.mapping.uuid, sid)
        except asyncio.CancelledError:
            raise
        except AwsError as exc:
            if exc.code in NOT_FOUND_CODES or exc.code in FATAL_CODES:
                self.status.set("Problem", f"{exc.code}: {exc.message}")
            self._reader_failed(sid, exc)
        except Exception as exc:
            log.exception("shard_reader_crashed", mapping=self.mapping.uuid, shard=sid)
            self._reader_failed(sid, exc)
        finally:
            entry = self.readers.get(sid)
            if not self.stopping.is_set() and entry is not None and entry[0] is reader:
                await sink.stop()
                self.readers.pop(sid, None)
                position = sink.position()
                if not reader.ended and position is not None:
                    self.checkpoints[sid] = position
                self._wake.set()

    def _reader_failed(self, sid: str, exc: BaseException) -> None:
        n = self._failures.get(sid, 0) + 1
        self._failures[sid] = n
        delay = backoff(n, 1.0, 60.0)
        self._retry_at[sid] = time.monotonic() + delay
        log.warning("shard_reader_failed", mapping=self.mapping.uuid, shard=sid,
                    error=str(exc), retry_in_seconds=round(delay, 1))

    async def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                await self.discover()
                failures = 0
                if self.api.problem and not self.readers:
                    self.status.set("Problem", self.api.problem)
                else:
                    self.status.set("Enabled", "polling")
            except AwsError as exc:
                failures += 1
                state_reason = f"{exc.code}: {exc.message}" if exc.message else exc.code
                self.status.set("Problem", state_reason)
                metrics.poll_errors.labels(self.mapping.uuid,
                                           "not_found" if exc.code in NOT_FOUND_CODES
                                           else "error").inc()
                if await sleep_unless(backoff(failures, 1.0, 60.0), self.stopping):
                    break
                continue
            self._reconcile()
            self._watchdog()
            self._wake.clear()
            interval = self.tuning.shard_discovery_seconds
            if self.watchdog_seconds:
                interval = min(interval, max(0.1, self.watchdog_seconds / 4))
            if self._retry_at:
                soonest = min(self._retry_at.values()) - time.monotonic()
                interval = max(0.05, min(interval, soonest))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._any_wake(), interval)

    async def _any_wake(self) -> None:
        stop = asyncio.ensure_future(self.stopping.wait())
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def stop(self, grace: float) -> None:
        """Stop reading, let in-flight batches finish within ``grace`` seconds."""
        self.stopping.set()
        readers = list(self.readers.values())
        for _r, _s, task in readers:  # reading has nothing to finish
            task.cancel()
        await asyncio.gather(*(t for _r, _s, t in readers), return_exceptions=True)
        stops = [asyncio.create_task(s.stop()) for _r, s, _t in readers]
        pending: set[asyncio.Task[None]] = set()
        if stops:
            _done, pending = await asyncio.wait(stops, timeout=grace)
        for t in pending:
            t.cancel()
        for _r, sink, _t in readers:
            sink.cancel()
        if pending:
            log.warning("drain_timeout", mapping=self.mapping.uuid, abandoned=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    # --- leases (many replicas) and the stuck-shard watchdog ------------------------------------

    def known_shards(self) -> dict[str, tuple[str, ...]]:
        """Discovered shards and their parents."""
        return {sid: info.parents for sid, info in self.shards.items()}

    def adopt(self, shard: str, checkpoint: str) -> None:
        """This replica now holds the shard's lease; read it from ``checkpoint``."""
        if self.owned is None:
            self.owned = set()
        self.owned.add(shard)
        self.checkpoints[shard] = checkpoint
        self._latest.discard(shard)  # the lease's position rules (another replica moved it)
        self._retry_at.pop(shard, None)
        self._failures.pop(shard, None)
        self._wake.set()

    def _detach(self, shard: str) -> tuple[ShardReader, ShardSink, asyncio.Task[None]] | None:
        if self.owned is not None:
            self.owned.discard(shard)
        self._progress.pop(shard, None)
        entry = self.readers.pop(shard, None)
        metrics.shards_owned.labels(self.mapping.uuid).set(len(self.readers))
        return entry

    def abandon(self, shard: str) -> None:
        """The lease is lost: stop at once, in-flight batches included; checkpoint nothing."""
        entry = self._detach(shard)
        if entry is None:
            return
        _reader, sink, task = entry
        task.cancel()
        sink.cancel()
        log.warning("shard_abandoned", mapping=self.mapping.uuid, shard=shard)

    async def _stop_reader(self, entry: tuple[ShardReader, ShardSink, asyncio.Task[None]],
                           grace: float) -> None:
        """Stop reading; let the in-flight batches finish within ``grace``, then cancel them."""
        reader, sink, task = entry
        self._pausing.add(reader.shard_id)
        try:
            await self._stop_pipeline(reader, sink, task, grace)
        finally:
            self._pausing.discard(reader.shard_id)

    async def _stop_pipeline(self, reader: ShardReader, sink: ShardSink, task: asyncio.Task[None],
                             grace: float) -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stop = asyncio.create_task(sink.stop())
        _done, pending = await asyncio.wait({stop}, timeout=grace)
        if pending:
            sink.cancel()
            stop.cancel()
            await asyncio.gather(stop, return_exceptions=True)
            log.warning("handoff_grace_exceeded", mapping=self.mapping.uuid,
                        shard=reader.shard_id)
        position = sink.position()
        if position is not None and self.checkpoints.get(reader.shard_id) != SHARD_END:
            self.checkpoints[reader.shard_id] = position

    async def hand_off(self, shard: str, grace: float) -> None:
        """Stop the shard for a graceful hand-off; the caller then flushes and releases."""
        entry = self._detach(shard)
        if entry is not None:
            await self._stop_reader(entry, grace)

    def _watchdog(self) -> None:
        """Restart readers of shards with lag whose checkpoint has not moved for a while."""
        if not self.watchdog_seconds:
            return
        now = time.monotonic()
        for sid, (reader, sink, _task) in list(self.readers.items()):
            position = sink.position()
            lag = bool(reader.behind) or (reader.last_seq is not None
                                          and reader.last_seq != position)
            seen = self._progress.get(sid)
            if not lag or seen is None or seen[0] != position:
                self._progress[sid] = (position, now)
                continue
            if now - seen[1] < self.watchdog_seconds:
                continue
            log.warning("shard_stuck_restarting", mapping=self.mapping.uuid, shard=sid,
                        stuck_seconds=round(now - seen[1], 1))
            metrics.watchdog_restarts.labels(self.mapping.uuid).inc()
            owned = self.owned
            entry = self._detach(sid)
            if owned is not None:
                owned.add(sid)  # the lease stays ours; only the reader restarts
            assert entry is not None
            restart = asyncio.create_task(self._restart(entry))
            self._restarting.add(restart)
            restart.add_done_callback(self._restarting.discard)

    async def _restart(self, entry: tuple[ShardReader, ShardSink, asyncio.Task[None]]) -> None:
        await self._stop_reader(entry, self.tuning.drain_grace_seconds)
        self._wake.set()
