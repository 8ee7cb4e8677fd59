"""Runs one batch to completion: invoke, retry, bisect, partial failures, record age, and the
on-failure pipeline. Every record it is handed ends ``done`` unless the shard is stopping."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from poller.batching import MAX_PAYLOAD_BYTES, build_payload, payload_size
from poller.config_model import Mapping, TuningConfig
from poller.destinations import Destination, DestinationError, FailureContext
from poller.events.failure import RECORD_AGE_EXCEEDED, RETRY_ATTEMPTS_EXHAUSTED, failure_document
from poller.invokers import Invoker, InvokeResult, Outcome
from poller.observability import metrics
from poller.processing.responses import INVALID, SUCCESS, first_failure
from poller.records import Record

log = structlog.get_logger(__name__)


@dataclass(eq=False)
class ShardContext:
    """What the processor knows about where a batch came from: only its shape and labels."""

    mapping: Mapping
    shard_id: str
    batch_info_key: str
    batch_info: Callable[[Sequence[Record]], dict[str, Any]]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # the invoke payload of records[start:end]; sources whose event is not {"Records": [...]}
    # pass their own (with ``extra_bytes`` = their envelope's size beyond ENVELOPE_BYTES)
    build: Callable[[Sequence[Record], int, int], bytes] = build_payload
    size: Callable[[Sequence[Record], int, int], int] = payload_size
    extra_bytes: int = 0
    # tumbling windows: sees each successful response; False = the invoke failed (no state)
    on_response: Callable[[bytes], bool] | None = None
    # the record ``seq`` an ``itemIdentifier`` names (sources whose identifier is not that string)
    item_key: Callable[[object], str | None] | None = None

    def __post_init__(self) -> None:
        labels = (self.mapping.uuid, self.shard_id)
        self.m_invoked = metrics.records_invoked.labels(*labels)
        self.m_failed = metrics.records_failed.labels(*labels)
        self.m_processed = metrics.records_processed.labels(*labels)
        self.m_dropped = metrics.records_dropped.labels(*labels)
        self.m_delivered = metrics.records_onfailure_delivered.labels(*labels)
        self.m_iterator_age = metrics.iterator_age.labels(*labels)


async def sleep_unless(delay: float, stop: asyncio.Event) -> bool:
    """Sleep ``delay`` seconds; True if ``stop`` was set meanwhile (the caller should give up).

    One future woken by a timer or by ``stop.set()`` (it joins the event's waiters, as
    ``Event.wait`` does): no task and no timeout exception per sleep, which matters with a
    thousand idle shard readers sleeping once a second."""
    if stop.is_set():
        return True
    waiters = getattr(stop, "_waiters", None)
    if not isinstance(waiters, collections.deque):  # not CPython's Event: the public way
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return stop.is_set()
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    timer = loop.call_later(delay, _wake, fut)
    waiters.append(fut)
    try:
        await fut
    finally:
        timer.cancel()
        with contextlib.suppress(ValueError):
            waiters.remove(fut)
    return stop.is_set()


def _wake(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(False)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with equal jitter; ``attempt`` counts from 1."""
    delay: float = min(cap, base * (2 ** min(attempt - 1, 30)))
    return delay / 2 + random.uniform(0, delay / 2)


class Processor:
    def __init__(self, mapping: Mapping, invoker: Invoker, destination: Destination | None,
                 tuning: TuningConfig, clock: Callable[[], float] = time.time) -> None:
        self.mapping = mapping
        self.invoker = invoker
        self.destination = destination
        self.tuning = tuning
        self.clock = clock
        m = mapping.uuid
        self._duration = {o: metrics.invoke_duration.labels(m, o.value) for o in Outcome}
        self._batch_records = metrics.batch_records.labels(m)
        self._batch_bytes = metrics.batch_bytes.labels(m)
        self._retries = {r: metrics.retries.labels(m, r) for r in
                         ("function_error", "partial_failure", "bad_response", "throttled",
                          "invoke_error", "too_large")}
        self._throttles = metrics.throttles.labels(m, "invoke")
        self._bisects = metrics.bisects.labels(m)
        self._bad_responses = metrics.bad_responses.labels(m)
        self._oversize = metrics.oversize_records.labels(m)
        self._delivery_failures = metrics.onfailure_delivery_failures.labels(m)

    async def process(self, ctx: ShardContext, records: list[Record]) -> bool:
        """Process ``records`` (one batch, shard order). Returns False if abandoned because the
        shard is stopping; records left not ``done`` are then re-read after a restart."""
        work: list[tuple[int, int]] = [(0, len(records))]
        while work:
            start, end = work.pop()
            split = await self._run(ctx, records, start, end)
            if split is None:
                return False
            work.extend(reversed(split))
        return True

    async def _run(self, ctx: ShardContext, records: list[Record], start: int,
                   end: int) -> list[tuple[int, int]] | None:
        """Drive records[start:end] until done. Returns sub-ranges still to process (bisect),
        [] when done, None when abandoned."""
        mapping = self.mapping
        attempts = 0  # invocations of this (sub-)batch that reached the function
        transient = 0  # consecutive throttles / service errors (no attempt consumed)
        last: InvokeResult | None = None
        while True:
            if mapping.maximum_record_age_in_seconds != -1:
                cutoff = self.clock() - mapping.maximum_record_age_in_seconds
                expired = start
                while expired < end and records[expired].arrival < cutoff:
                    expired += 1
                if expired > start:
                    if not await self._give_up(ctx, records, start, expired, RECORD_AGE_EXCEEDED,
                                               max(attempts, 1), last):
                        return None
                    start = expired
                    if start == end:
                        return []
            size = ctx.size(records, start, end)
            if size > MAX_PAYLOAD_BYTES:
                if end - start > 1:
                    mid = (start + end) // 2
                    return [(start, mid), (mid, end)]
                self._oversize.inc()
                log.error("record_too_large", mapping=mapping.uuid, shard=ctx.shard_id,
                          sequence_number=records[start].seq, payload_bytes=size,
                          limit=MAX_PAYLOAD_BYTES)
                return [] if await self._give_up(ctx, records, start, end,
                                                 RETRY_ATTEMPTS_EXHAUSTED, attempts, None) else None
            n = end - start
            payload = ctx.build(records, start, end)
            ctx.m_iterator_age.set(max(0.0, (self.clock() - records[end - 1].arrival) * 1000.0))
            self._batch_records.observe(n)
            self._batch_bytes.observe(size)
            ctx.m_invoked.inc(n)
            t0 = time.perf_counter()
            result = await self.invoker.invoke(payload)
            outcome = result.outcome
            self._duration[outcome].observe(time.perf_counter() - t0)

            if outcome is Outcome.THROTTLED or outcome is Outcome.ERROR:
                ctx.m_failed.inc(n)
                transient += 1
                if outcome is Outcome.THROTTLED:
                    self._throttles.inc()
                    self._retries["throttled"].inc()
                else:
                    self._retries["invoke_error"].inc()
                    log.warning("invoke_failed", mapping=mapping.uuid, shard=ctx.shard_id,
                                status=result.status, error=result.error, attempt=transient)
                delay = backoff(transient, self.tuning.throttle_base_seconds,
                                self.tuning.throttle_max_seconds)
                if await sleep_unless(delay, ctx.stopping):
                    return None
                continue
            transient = 0
            if outcome is Outcome.TOO_LARGE:
                ctx.m_failed.inc(n)
                if n > 1:
                    self._retries["too_large"].inc()
                    mid = (start + end) // 2
                    return [(start, mid), (mid, end)]
                self._oversize.inc()
                log.error("record_too_large", mapping=mapping.uuid, shard=ctx.shard_id,
                          sequence_number=records[start].seq, payload_bytes=size,
                          status=result.status)
                return [] if await self._give_up(ctx, records, start, end,
                                                 RETRY_ATTEMPTS_EXHAUSTED, attempts + 1,
                                                 result) else None
            last = result
            if outcome is Outcome.FUNCTION_ERROR:
                attempts += 1
                ctx.m_failed.inc(n)
                if mapping.bisect_batch_on_function_error and n > 1:
                    self._bisects.inc()
                    mid = (start + end) // 2
                    return [(start, mid), (mid, end)]
                reason = "function_error"
            elif ctx.on_response is not None and not ctx.on_response(result.payload):
                attempts += 1
                ctx.m_failed.inc(n)
                self._bad_responses.inc()
                log.warning("window_state_missing", mapping=mapping.uuid, shard=ctx.shard_id,
                            batch_size=n)
                reason = "bad_response"
            else:
                failed_at = (first_failure(result.payload, records, start, end, ctx.item_key)
                             if mapping.report_batch_item_failures else SUCCESS)
                if failed_at == SUCCESS:
                    self._finish(ctx, records, start, end)
                    return []
                attempts += 1
                ctx.m_failed.inc(n)
                if failed_at == INVALID:
                    self._bad_responses.inc()
                    log.warning("bad_partial_batch_response", mapping=mapping.uuid,
                                shard=ctx.shard_id, batch_size=n)
                    reason = "bad_response"
                else:
                    if failed_at > start:
                        self._finish(ctx, records, start, failed_at)
                        start = failed_at
                    reason = "partial_failure"
            if mapping.maximum_retry_attempts != -1 and attempts > mapping.maximum_retry_attempts:
                return [] if await self._give_up(ctx, records, start, end,
                                                 RETRY_ATTEMPTS_EXHAUSTED, attempts,
                                                 last) else None
            self._retries[reason].inc()
            delay = backoff(attempts, self.tuning.retry_base_seconds, self.tuning.retry_max_seconds)
            if await sleep_unless(delay, ctx.stopping):
                return None

    async def invoke_final(self, ctx: ShardContext, payload: bytes) -> bool:
        """A records-less invocation (a tumbling window's final one), retried like a batch:
        throttles and service errors without limit, function errors up to
        MaximumRetryAttempts (then given up with an error log). False if the shard stopped."""
        mapping = self.mapping
        attempts = transient = 0
        while True:
            t0 = time.perf_counter()
            result = await self.invoker.invoke(payload)
            outcome = result.outcome
            self._duration[outcome].observe(time.perf_counter() - t0)
            if outcome is Outcome.THROTTLED or outcome is Outcome.ERROR:
                transient += 1
                if outcome is Outcome.THROTTLED:
                    self._throttles.inc()
                self._retries["throttled" if outcome is Outcome.THROTTLED
                              else "invoke_error"].inc()
                if await sleep_unless(backoff(transient, self.tuning.throttle_base_seconds,
                                              self.tuning.throttle_max_seconds), ctx.stopping):
                    return False
                continue
            transient = 0
            if outcome is Outcome.OK:
                return True
            attempts += 1
            if mapping.maximum_retry_attempts != -1 and attempts > mapping.maximum_retry_attempts:
                log.error("window_final_invoke_given_up", mapping=mapping.uuid,
                          shard=ctx.shard_id, invoke_count=attempts, status=result.status,
                          error=result.error)
                return True
            self._retries["function_error"].inc()
            if await sleep_unless(backoff(attempts, self.tuning.retry_base_seconds,
                                          self.tuning.retry_max_seconds), ctx.stopping):
                return False

    def _finish(self, ctx: ShardContext, records: list[Record], start: int, end: int) -> None:
        for i in range(start, end):
            records[i].done = True
        ctx.m_processed.inc(end - start)

    async def _give_up(self, ctx: ShardContext, records: list[Record], start: int, end: int,
                       condition: str, invoke_count: int, last: InvokeResult | None) -> bool:
        """Send the on-failure record for records[start:end] (if a destination is set) and mark
        them done. False when the shard stopped before delivery finished."""
        n = end - start
        batch = records[start:end]
        log.warning("records_given_up", mapping=self.mapping.uuid, shard=ctx.shard_id,
                    condition=condition, batch_size=n, start_sequence_number=batch[0].seq,
                    end_sequence_number=batch[-1].seq, invoke_count=invoke_count,
                    destination=self.mapping.on_failure_destination)
        if self.destination is None:
            ctx.m_dropped.inc(n)
        else:
            now = datetime.fromtimestamp(self.clock(), UTC)
            response = None if last is None else {
                "statusCode": last.status,
                "executedVersion": last.executed_version or "$LATEST",
                "functionError": last.function_error,
            }
            document = failure_document(
                request_id=(last.request_id if last is not None and last.request_id
                            else str(uuid.uuid4())),
                function_arn=self.mapping.function_arn, condition=condition,
                approximate_invoke_count=invoke_count, response=response, timestamp=now,
                batch_info_key=ctx.batch_info_key, batch_info=ctx.batch_info(batch))
            delivered = await self._deliver(ctx, document, ctx.build(records, start, end),
                                            FailureContext(self.mapping.uuid, ctx.shard_id, now))
            if delivered is None:
                return False
            if delivered:
                ctx.m_delivered.inc(n)
            else:
                ctx.m_dropped.inc(n)
        for r in batch:
            r.done = True
        return True

    async def _deliver(self, ctx: ShardContext, document: dict[str, Any], payload: bytes,
                       fctx: FailureContext) -> bool | None:
        assert self.destination is not None
        attempts = self.tuning.destination_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self.destination.send(document, payload, fctx)
                return True
            except DestinationError as exc:
                error, retryable = str(exc), exc.retryable
            except Exception as exc:  # unexpected client errors: retry like a service error
                error, retryable = f"{type(exc).__name__}: {exc}", True
            log.error("onfailure_delivery_failed", mapping=self.mapping.uuid,
                      shard=ctx.shard_id, destination=self.mapping.on_failure_destination,
                      error=error, attempt=attempt, retryable=retryable)
            if not retryable or attempt == attempts:
                break
            if await sleep_unless(backoff(attempt, self.tuning.throttle_base_seconds,
                                          self.tuning.throttle_max_seconds), ctx.stopping):
                return None
        self._delivery_failures.inc()
        return False
