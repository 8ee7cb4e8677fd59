"""Kafka reader (Amazon MSK and self-managed Apache Kafka) on aiokafka.

One consumer group member per mapping (group id: ConsumerGroupId, default the mapping's UUID).
Each assigned partition gets its own ShardPipeline (shard id ``"<topic>-<partition>"``), so a
partition's batches run one at a time, in offset order, and its ordered watermark decides what
is committed: only offsets whose records are done, as ``last done offset + 1``. Before a
rebalance takes partitions away, their pipelines stop (in-flight batches finish or are
abandoned) and their offsets are committed; a partition whose pipeline is full is paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import Callable, Collection
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError

from poller.batching import ENVELOPE_BYTES, KafkaEncoder, build_framed, framed_size
from poller.config_model import KafkaSource, Mapping, TuningConfig
from poller.events import kafka as kafka_events
from poller.filtering import MISSING, NO_MATCH, SKIP, TEXT, ShapedFilters, parse_data
from poller.observability import metrics
from poller.processing.pipeline import ShardPipeline
from poller.processing.processor import Processor, ShardContext, backoff, sleep_unless
from poller.records import Record
from poller.sources.kafka_fetch import RawEncoding
from poller.sources.kafka_security import (
    KafkaAuthError,
    SecretFetcher,
    Secrets,
    client_security,
    load_secrets,
)
from poller.sources.shards import STALE_POLL_SECONDS, MappingStatus

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS = 200
PAUSED_POLL_TIMEOUT_MS = 10  # while partitions wait for room, look for it often
MAX_POLL_RECORDS = 10000
# a full partition is first held (left out of getmany: its fetched data stays in aiokafka's
# buffer, nothing is re-fetched); only one full for this long is paused, which keeps getmany
# called (a consumer that stops calling it leaves the group after max_poll_interval_ms)
HOLD_SECONDS = 5.0
REVOKE_GRACE_SECONDS = 20.0  # in-flight batches of revoked partitions get at most this long


def inflight_limit(mapping: Mapping) -> int:
    """Records read but not done per partition before the partition is paused (pausing drops
    aiokafka's prefetched records, which are fetched again on resume: not too often)."""
    return max(4 * mapping.batch_size, 10000)


_TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}


class KafkaView:
    """A consumer record as FilterCriteria see it: the metadata as delivered (``topic``,
    ``partition``, ``offset``, ``timestamp``, ``timestampType``, ``headers``) and ``key`` /
    ``value`` decoded as UTF-8, then as JSON for patterns whose value for the key is an object,
    as the string for rule arrays. When the format differs (or the bytes are not UTF-8) the
    key's rules are skipped: the record matches on the other rules only, as in Lambda. Each
    key is decoded at most once, only if read. A record without a key has no ``key``; a
    tombstone's ``value`` is null."""

    __slots__ = ("_data", "_item", "shape")

    def __init__(self, item: Any) -> None:
        self._item = item
        self._data: dict[str, tuple[Any, Any]] = {}
        self.shape: dict[str, bool] = {}

    def get(self, key: str, default: Any = None, /) -> Any:
        item = self._item
        if key == "key" or key == "value":
            raw = item.key if key == "key" else item.value
            if raw is None:
                return MISSING if key == "key" else None
            data = self._data.get(key)
            if data is None:
                data = self._data[key] = parse_data(raw)
            parsed, text = data
            if self.shape.get(key, True):
                return SKIP if parsed is TEXT or parsed is NO_MATCH else parsed
            return SKIP if text is NO_MATCH else text
        if key == "topic":
            return item.topic
        if key == "partition":
            return item.partition
        if key == "offset":
            return item.offset
        if key == "timestamp":
            return item.timestamp
        if key == "timestampType":
            return _TIMESTAMP_TYPES.get(item.timestamp_type, "NO_TIMESTAMP_TYPE")
        if key == "headers":
            return [{name: list(data) if data is not None else None}
                    for name, data in item.headers or ()]
        return default


class KafkaCommitter:
    """The pipelines' checkpoint sink: each partition's last done offset, committed to the
    consumer group as the next offset to read, coalesced per flush interval."""

    def __init__(self, consumer: AIOKafkaConsumer, flush_seconds: float) -> None:
        self._consumer = consumer
        self._flush_seconds = flush_seconds
        self._partitions: dict[str, TopicPartition] = {}
        self._dirty: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def register(self, shard_id: str, tp: TopicPartition) -> None:
        self._partitions[shard_id] = tp

    def set(self, mapping: str, shard: str, checkpoint: str) -> None:
        self._dirty[self._partitions[shard]] = int(checkpoint) + 1
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="kafka-committer")

    async def flush(self, only: Collection[TopicPartition] | None = None) -> None:
        async with self._lock:
            assigned = self._consumer.assignment()
            offsets = {tp: off for tp, off in self._dirty.items()
                       if (only is None or tp in only) and tp in assigned}
            for tp in list(self._dirty):
                if tp not in assigned:  # another member owns it now: its commit would fail
                    del self._dirty[tp]
            if not offsets:
                return
            for tp in offsets:
                del self._dirty[tp]
            try:
                await self._consumer.commit(offsets)
            except (KafkaError, asyncio.CancelledError):
                for tp, off in offsets.items():
                    self._dirty.setdefault(tp, off)
                raise
            self.committed.update(offsets)

    async def _loop(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                failures = 0
            except KafkaError as exc:
                failures += 1
                log.warning("kafka_commit_failed", error=str(exc), attempt=failures)
                self._wake.set()
                await asyncio.sleep(backoff(failures, 0.2, 5.0))
                continue
            await asyncio.sleep(self._flush_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _problem(exc: BaseException) -> str:
    """StateTransitionReason-like text for a failure to connect (no secret values)."""
    if isinstance(exc, KafkaAuthError):
        return f"PROBLEM: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "PROBLEM: Lambda failed to authenticate server."
    if "Authentication" in type(exc).__name__ or "authentication" in str(exc).lower():
        return "PROBLEM: SASL authentication failed."
    return f"PROBLEM: Connection error. {type(exc).__name__}: {exc}"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaMapping) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._owner.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._owner.assign(set(assigned))


class KafkaMapping:
    """Reads one Kafka mapping's topic as a member of its consumer group."""

    def __init__(self, mapping: Mapping, processor: Processor, tuning: TuningConfig,
                 consumer_factory: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer,
                 fetch_secret: SecretFetcher | None = None) -> None:
        assert mapping.kafka is not None
        self.mapping = mapping
        self.source: KafkaSource = mapping.kafka
        self.tuning = tuning
        self._processor = processor
        self.status = MappingStatus(mapping.uuid)
        self.stopping = asyncio.Event()
        self.pipelines: dict[TopicPartition, ShardPipeline] = {}
        self._encoders: dict[TopicPartition, KafkaEncoder] = {}
        self._paused: set[TopicPartition] = set()
        self._held: dict[TopicPartition, float] = {}  # full partitions: since when
        self._base: dict[TopicPartition, int] = {}
        self._last_poll = time.monotonic()
        self._limit = inflight_limit(mapping)
        self._consumer_factory = consumer_factory
        self._fetch_secret = fetch_secret
        self._secrets: Secrets = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.committer: KafkaCommitter | None = None
        m = mapping.uuid
        self._m_partitions = metrics.shards_owned.labels(m)
        self._m_errors = metrics.poll_errors.labels(m, "error")
        self.filters = (ShapedFilters(mapping.filter_patterns, ("key", "value"))
                        if mapping.filter_patterns else None)
        # FilterCriteria read the consumer records; without them, records skip that step
        self._raw = RawEncoding() if self.filters is None else None

    def _new_consumer(self) -> AIOKafkaConsumer:
        mapping, tuning = self.mapping, self.tuning
        session_ms = int(tuning.kafka_session_timeout_seconds * 1000)
        position = mapping.starting_position
        return self._consumer_factory(
            **client_security(self.source, self._secrets),
            bootstrap_servers=list(self.source.bootstrap_servers),
            group_id=self.source.consumer_group_id,
            client_id=f"esm-poller-{mapping.uuid}",
            enable_auto_commit=False,
            auto_offset_reset="latest" if position == "LATEST" else "earliest",
            max_poll_records=MAX_POLL_RECORDS,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(100, session_ms // 3),
            rebalance_timeout_ms=int((REVOKE_GRACE_SECONDS + 10) * 1000),
            metadata_max_age_ms=30_000,
            **({"key_deserializer": self._raw} if self._raw is not None else {}),
        )

    def _live(self) -> tuple[AIOKafkaConsumer, KafkaCommitter]:
        assert self.consumer is not None and self.committer is not None, "not started"
        return self.consumer, self.committer

    @property
    def polling(self) -> bool:
        """Ready: the consumer is running and fetched within the last minute."""
        return (self.status.state == "Enabled"
                and time.monotonic() - self._last_poll < STALE_POLL_SECONDS)

    def _pipeline(self, tp: TopicPartition) -> ShardPipeline:
        shard_id = kafka_events.partition_key(tp.topic, tp.partition)
        head, tail = kafka_events.envelope(self.source, self.mapping.event_source_arn,
                                           tp.topic, tp.partition)
        fixed = len(head) + len(tail)
        source = self.source

        def build(records: Any, start: int, end: int) -> bytes:
            return build_framed(head, records, start, end, tail)

        def size(records: Any, start: int, end: int) -> int:
            return framed_size(records, start, end, fixed)

        def info(records: Any) -> dict[str, Any]:
            return kafka_events.batch_info(source, tp.topic, tp.partition, records)

        lanes = self.mapping.target.key_parallelism
        ctx = ShardContext(dataclasses.replace(self.mapping, parallelization_factor=lanes),
                           shard_id, kafka_events.BATCH_INFO_KEY, info,
                           build=build, size=size, extra_bytes=fixed - ENVELOPE_BYTES,
                           item_key=kafka_events.item_key(shard_id))
        _consumer, committer = self._live()
        committer.register(shard_id, tp)
        return ShardPipeline(ctx, self._processor, committer, self.tuning)

    async def assign(self, assigned: set[TopicPartition]) -> None:
        for tp in sorted(assigned):
            if tp in self.pipelines:
                continue
            self.pipelines[tp] = self._pipeline(tp)
            self._encoders[tp] = KafkaEncoder(tp.topic, tp.partition)
            self._base.pop(tp, None)
        if self.mapping.starting_position == "AT_TIMESTAMP":
            await self._seek_to_timestamp(assigned)
        self._m_partitions.set(len(self.pipelines))
        log.info("kafka_partitions_assigned", mapping=self.mapping.uuid,
                 partitions=sorted(kafka_events.partition_key(tp.topic, tp.partition)
                                   for tp in assigned))

    async def _seek_to_timestamp(self, assigned: set[TopicPartition]) -> None:
        """AT_TIMESTAMP applies only where the group has no committed offset yet."""
        ts = self.mapping.starting_position_timestamp
        assert ts is not None
        consumer, _committer = self._live()
        fresh = [tp for tp in assigned if await consumer.committed(tp) is None]
        if not fresh:
            return
        found = await consumer.offsets_for_times({tp: int(ts * 1000) for tp in fresh})
        ends = await consumer.end_offsets(fresh)
        for tp in fresh:
            hit = found.get(tp)
            consumer.seek(tp, hit.offset if hit is not None else ends[tp])

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """Stop the partitions' pipelines (bounded), commit what they finished, drop them."""
        pipes = {tp: self.pipelines[tp] for tp in revoked if tp in self.pipelines}
        if not pipes:
            return
        stops = [asyncio.create_task(p.stop()) for p in pipes.values()]
        grace = min(self.tuning.drain_grace_seconds, REVOKE_GRACE_SECONDS)
        _done, pending = await asyncio.wait(stops, timeout=grace) if stops else (set(), set())
        for pipe in pipes.values():
            pipe.cancel()
        if pending:
            log.warning("kafka_revoke_timeout", mapping=self.mapping.uuid, abandoned=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self._live()[1].flush(set(pipes))
        except KafkaError as exc:
            log.warning("kafka_commit_failed", mapping=self.mapping.uuid, error=str(exc),
                        when="revoke")
        for tp in pipes:
            del self.pipelines[tp]
            self._encoders.pop(tp, None)
            self._paused.discard(tp)
            self._held.pop(tp, None)
            self._base.pop(tp, None)
        self._m_partitions.set(len(self.pipelines))
        log.info("kafka_partitions_revoked", mapping=self.mapping.uuid,
                 partitions=sorted(kafka_events.partition_key(tp.topic, tp.partition)
                                   for tp in pipes))

    async def _start(self) -> tuple[AIOKafkaConsumer, KafkaCommitter] | None:
        """A started consumer, subscribed with the rebalance listener; None when stopping."""
        failures = 0
        while not self.stopping.is_set():
            consumer: AIOKafkaConsumer | None = None
            try:
                self._secrets = await load_secrets(self.source, self._fetch_secret)
                consumer = self._new_consumer()
                self.consumer = consumer
                self.committer = KafkaCommitter(consumer, self.tuning.checkpoint_flush_seconds)
                consumer.subscribe([self.source.topic], listener=_Listener(self))
                await consumer.start()
                return consumer, self.committer
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection, authentication and secret problems
                failures += 1
                self._m_errors.inc()
                cause = (await self._diagnose(exc) if isinstance(exc, KafkaConnectionError)
                         else exc)
                self.status.set("Problem", _problem(cause))
                log.warning("kafka_start_failed", mapping=self.mapping.uuid,
                            error=_problem(cause), attempt=failures)
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        await consumer.stop()
                if await sleep_unless(backoff(failures, 1.0, 30.0), self.stopping):
                    return None
        return None

    async def _diagnose(self, exc: Exception) -> Exception:
        """aiokafka reports any failed bootstrap as "Unable to bootstrap"; one direct connection
        to the first bootstrap server tells authentication and TLS failures apart."""
        host, _, port = self.source.bootstrap_servers[0].rpartition(":")
        security = client_security(self.source, self._secrets)
        try:
            conn = await create_conn(
                host, int(port), ssl_context=security.get("ssl_context"),
                security_protocol=security["security_protocol"],
                sasl_mechanism=security.get("sasl_mechanism", "PLAIN"),
                sasl_plain_username=security.get("sasl_plain_username"),
                sasl_plain_password=security.get("sasl_plain_password"),
                request_timeout_ms=10_000)
        except asyncio.CancelledError:
            raise
        except Exception as cause:
            return cause
        conn.close()
        return exc  # the bootstrap server answers: the problem was elsewhere

    async def run(self) -> None:
        started = await self._start()
        if started is None:
            return
        consumer, committer = started
        committer.start()
        self.status.set("Enabled", "polling")
        failures = 0
        while not self.stopping.is_set():
            try:
                timeout_ms = (PAUSED_POLL_TIMEOUT_MS if self._paused or self._held
                              else POLL_TIMEOUT_MS)
                if self._held:
                    ready = consumer.assignment() - self._held.keys()
                    if not ready:  # every partition is full: wait for room, fetch nothing
                        await sleep_unless(timeout_ms / 1000, self.stopping)
                        self._last_poll = time.monotonic()  # backpressure, not a stall
                        self._update_flow()
                        continue
                    fetched = await consumer.getmany(*ready, timeout_ms=timeout_ms,
                                                     max_records=MAX_POLL_RECORDS)
                else:
                    fetched = await consumer.getmany(timeout_ms=timeout_ms,
                                                     max_records=MAX_POLL_RECORDS)
                failures = 0
                self.status.set("Enabled", "polling")
            except KafkaError as exc:
                failures += 1
                self._m_errors.inc()
                self.status.set("Problem", f"PROBLEM: {type(exc).__name__}: {exc}")
                if await sleep_unless(backoff(failures, 0.5, 10.0), self.stopping):
                    return
                continue
            self._last_poll = time.monotonic()
            for tp, messages in fetched.items():
                self._deliver(tp, messages)
            self._update_flow()

    def _deliver(self, tp: TopicPartition, messages: list[Any]) -> None:
        pipe = self.pipelines.get(tp)
        encoder = self._encoders.get(tp)
        if pipe is None or encoder is None or not messages:
            return  # revoked meanwhile: the new owner reads them from the committed offset
        records: list[Record]
        if type(messages[0]) is list:  # record batches already rendered (kafka_fetch)
            records = messages[0] if len(messages) == 1 else [r for b in messages for r in b]
        else:
            records = encoder.encode(messages)
        self._base.setdefault(tp, records[0].position)
        shard = pipe.ctx.shard_id
        if self.filters is not None:
            matches = self.filters.matches
            filtered = 0
            for record, message in zip(records, messages, strict=True):
                if not matches(KafkaView(message)):
                    record.done = True  # committed past, never invoked
                    filtered += 1
            if filtered:
                metrics.records_filtered.labels(self.mapping.uuid, shard).inc(filtered)
        pipe.put(records)
        metrics.records_polled.labels(self.mapping.uuid, shard).inc(len(records))

    def _update_flow(self) -> None:
        """Pause partitions whose pipeline is full, resume those with room; record lag."""
        m = self.mapping.uuid
        consumer, _committer = self._live()
        now = time.monotonic()
        for tp, pipe in self.pipelines.items():
            pending = pipe.checkpointer.pending
            if tp in self._paused:
                if pending < self._limit // 4:
                    consumer.resume(tp)
                    self._paused.discard(tp)
            elif pending >= self._limit:
                since = self._held.setdefault(tp, now)
                if now - since >= HOLD_SECONDS:
                    consumer.pause(tp)
                    self._paused.add(tp)
                    del self._held[tp]
            else:
                self._held.pop(tp, None)
            shard = pipe.ctx.shard_id
            metrics.seconds_since_last_poll.labels(m, shard).set(0)
            high = consumer.highwater(tp)
            checkpoint = pipe.position()
            done = int(checkpoint) + 1 if checkpoint is not None else self._base.get(tp)
            if high is not None and done is not None:
                metrics.offset_lag.labels(m, shard).set(max(0, high - done))

    async def stop(self, grace: float) -> None:
        """Stop reading, let in-flight batches finish within ``grace`` seconds, commit, leave."""
        self.stopping.set()
        pipes = list(self.pipelines.values())
        stops = [asyncio.create_task(p.stop()) for p in pipes]
        pending: set[asyncio.Task[None]] = set()
        if stops:
            _done, pending = await asyncio.wait(stops, timeout=grace)
        for pipe in pipes:
            pipe.cancel()
        if pending:
            log.warning("drain_timeout", mapping=self.mapping.uuid, abandoned=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        self.pipelines.clear()
        if self.consumer is None or self.committer is None:
            return
        await self.committer.close()
        try:
            await self.committer.flush()
        except KafkaError as exc:
            log.warning("kafka_commit_failed", mapping=self.mapping.uuid, error=str(exc),
                        when="stop")
        with contextlib.suppress(Exception):
            await self.consumer.stop()
