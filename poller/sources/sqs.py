"""SQS queues: long-polling ReceiveMessage pollers that scale with the backlog, batches in the
SQS event shape, delete on success (only the successes with ReportBatchItemFailures).

AWS's SQS semantics, not the stream processor's: there is no checkpoint, no retry counting, no
bisect and no on-failure destination. A failed message stays in the queue and becomes visible
again after the visibility timeout; the queue's redrive policy moves it to its DLQ after
``maxReceiveCount`` receives. While a batch is gathered and processed, its messages' visibility
is extended so that a slow function does not see them delivered twice. FIFO queues keep order
per MessageGroupId: SQS does not hand out a group's messages while earlier ones are in flight,
and a failed message also holds back the later messages of its group in the same batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

import structlog

from poller.awsjson import AwsError, AwsJsonClient
from poller.batching import MAX_PAYLOAD_BYTES, SqsEncoder, build_payload, payload_size
from poller.config_model import Mapping, TuningConfig
from poller.filtering import MISSING, NO_MATCH, TEXT, ShapedFilters, parse_data
from poller.invokers import Invoker, Outcome
from poller.observability import metrics
from poller.processing.processor import backoff, sleep_unless
from poller.records import Record
from poller.sources.queue_metrics import QueueMetrics
from poller.sources.shards import FATAL_CODES, MappingStatus

log = structlog.get_logger(__name__)

MAX_RECEIVE = 10  # ReceiveMessage MaxNumberOfMessages
INITIAL_POLLERS = 5  # AWS starts an SQS mapping with five pollers
SCALE_UP_INTERVAL = 0.2  # at most 300 more pollers a minute (AWS's rate)
NOT_FOUND_CODES = frozenset({"QueueDoesNotExist", "NonExistentQueue",
                             "AWS.SimpleQueueService.NonExistentQueue"})


def queue_name(arn: str) -> str:
    return arn.split(":", 5)[5]


class SqsApi:
    """The few SQS calls a poller makes, over the raw JSON protocol."""

    def __init__(self, client: AwsJsonClient) -> None:
        self._client = client

    async def queue_url(self, name: str, account: str) -> str:
        resp = await self._client.call("GetQueueUrl", {"QueueName": name,
                                                       "QueueOwnerAWSAccountId": account})
        return str(resp["QueueUrl"])

    async def visibility_timeout(self, url: str) -> int:
        resp = await self._client.call("GetQueueAttributes", {
            "QueueUrl": url, "AttributeNames": ["VisibilityTimeout"]})
        return int((resp.get("Attributes") or {}).get("VisibilityTimeout", 30))

    async def receive(self, url: str, count: int, wait: int) -> list[dict[str, Any]]:
        resp = await self._client.call("ReceiveMessage", {
            "QueueUrl": url, "MaxNumberOfMessages": count, "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["All"], "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"]})
        return list(resp.get("Messages") or [])

    async def delete(self, url: str, handles: Sequence[str]) -> int:
        """Deletes in batches of 10; returns how many deletes failed."""
        failed = 0
        for i in range(0, len(handles), MAX_RECEIVE):
            chunk = handles[i:i + MAX_RECEIVE]
            resp = await self._client.call("DeleteMessageBatch", {
                "QueueUrl": url,
                "Entries": [{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(chunk)]})
            failed += len(resp.get("Failed") or [])
        return failed

    async def change_visibility(self, url: str, handles: Sequence[str], seconds: int) -> None:
        for i in range(0, len(handles), MAX_RECEIVE):
            chunk = handles[i:i + MAX_RECEIVE]
            await self._client.call("ChangeMessageVisibilityBatch", {
                "QueueUrl": url,
                "Entries": [{"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                            for n, h in enumerate(chunk)]})


_SQS_FIELDS = {"messageId": "MessageId", "receiptHandle": "ReceiptHandle",
               "md5OfBody": "MD5OfBody", "md5OfMessageAttributes": "MD5OfMessageAttributes"}


def _message_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        entry: dict[str, Any] = {}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = value["BinaryValue"]
        entry["stringListValues"] = value.get("StringListValues") or []
        entry["binaryListValues"] = value.get("BinaryListValues") or []
        entry["dataType"] = value.get("DataType", "String")
        out[name] = entry
    return out


class SqsView:
    """A received message as FilterCriteria see it: the record as delivered (``messageId``,
    ``attributes``, ``messageAttributes``, ``md5OfBody``, ...) and ``body``: the parsed JSON for
    patterns whose ``body`` is an object, the string for rule arrays, NO_MATCH when the formats
    differ (Lambda drops the message). The body is parsed at most once, only if read."""

    __slots__ = ("_msg", "_parsed", "_text", "shape")

    def __init__(self, msg: dict[str, Any]) -> None:
        self._msg = msg
        self._parsed: Any = MISSING
        self._text: Any = MISSING
        self.shape: dict[str, bool] = {}

    def get(self, key: str, default: Any = None, /) -> Any:
        msg = self._msg
        if key == "body":
            if self._parsed is MISSING:
                self._parsed, self._text = parse_data(msg["Body"])
            if self.shape.get("body", True):
                return NO_MATCH if self._parsed is TEXT else self._parsed
            return self._text
        if key == "attributes":
            return {k: str(v) for k, v in (msg.get("Attributes") or {}).items()}
        if key == "messageAttributes":
            return _message_attributes(msg.get("MessageAttributes") or {})
        name = _SQS_FIELDS.get(key)
        return default if name is None else msg.get(name, default)


def failed_ids(payload: bytes, ids: set[str]) -> set[str] | None:
    """The messageIds a ReportBatchItemFailures response names: empty when the whole batch
    succeeded, None when the response fails the whole batch (AWS's SQS cases)."""
    text = payload.strip()
    if not text:
        return set()
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return set()
    failures = doc.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    out: set[str] = set()
    for entry in failures:
        if not isinstance(entry, dict):
            return None
        ident = entry.get("itemIdentifier")
        if not isinstance(ident, str) or ident not in ids:
            return None
        out.add(ident)
    return out


class PollerBudget:
    """The process-wide cap on concurrent SQS pollers (tuning.sqs_max_pollers)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, force: bool = False) -> bool:
        if self.used >= self.limit and not force:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


class _Batch:
    """Messages received for one invocation, with their receipt handles."""

    __slots__ = ("handles", "records")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.handles: list[str] = []


class SqsMapping:
    """Runs one SQS mapping: between INITIAL_POLLERS and the concurrency cap of pollers, each
    receiving a batch, invoking the function with it and deleting what succeeded."""

    def __init__(self, mapping: Mapping, api: SqsApi, invoker: Invoker, tuning: TuningConfig,
                 budget: PollerBudget) -> None:
        self.mapping = mapping
        self.api = api
        self.invoker = invoker
        self.tuning = tuning
        self.budget = budget
        self.queue = queue_name(mapping.event_source_arn)
        self.status = MappingStatus(mapping.uuid)
        self.stopping = asyncio.Event()
        self.cap = mapping.maximum_concurrency or 1000
        self.floor = min(INITIAL_POLLERS, self.cap)
        self.url = ""
        self.visibility = 30
        self.pollers: set[asyncio.Task[None]] = set()
        self.last_poll = time.monotonic()
        self._last_scale = 0.0
        self._encoder = SqsEncoder(mapping.region, mapping.event_source_arn)
        labels = (mapping.uuid, self.queue)
        self.series = QueueMetrics(mapping.uuid, self.queue)
        self._pollers_gauge = metrics.sqs_pollers.labels(mapping.uuid)
        self._deleted = metrics.sqs_messages_deleted.labels(mapping.uuid)
        self.filters = (ShapedFilters(mapping.filter_patterns, ("body",))
                        if mapping.filter_patterns else None)
        self._receiving: set[asyncio.Task[Any]] = set()
        self._reconnects = 0
        self._bad_responses = metrics.bad_responses.labels(mapping.uuid)
        self._errors = {k: metrics.poll_errors.labels(mapping.uuid, k)
                        for k in ("throttled", "not_found", "error")}
        metrics.seconds_since_last_poll.labels(*labels).set_function(
            lambda: time.monotonic() - self.last_poll)

    @property
    def polling(self) -> bool:
        return self.status.state == "Enabled"

    async def _connect(self) -> bool:
        """Resolve the queue URL and visibility timeout; False when stopping first."""
        failures = 0
        while not self.stopping.is_set():
            try:
                self.url = await self.api.queue_url(self.queue, self.mapping.account)
                self.visibility = await self.api.visibility_timeout(self.url)
                return True
            except AwsError as exc:
                failures += 1
                self._problem(exc)
                if await sleep_unless(backoff(failures, 1.0, 60.0), self.stopping):
                    return False
        return False

    def _problem(self, exc: AwsError) -> None:
        kind = "not_found" if exc.code in NOT_FOUND_CODES else (
            "throttled" if exc.throttled else "error")
        self._errors[kind].inc()
        self.status.set("Problem", f"{exc.code}: {exc.message}" if exc.message else exc.code)

    async def run(self) -> None:
        while not self.stopping.is_set():
            if self._reconnects and await sleep_unless(
                    backoff(self._reconnects, 1.0, 60.0), self.stopping):
                return
            self._reconnects += 1
            if not await self._connect():
                return
            self.status.set("Enabled", "polling")
            for _ in range(self.floor):
                self._spawn(force=True)
            # pollers end on their own when the queue goes away: reconnect (with backoff)
            while self.pollers and not self.stopping.is_set():
                await asyncio.wait(set(self.pollers), return_when=asyncio.ALL_COMPLETED)

    def _spawn(self, force: bool = False) -> bool:
        if len(self.pollers) >= self.cap or not self.budget.take(force):
            return False
        task = asyncio.create_task(self._poller(), name=f"sqs-{self.mapping.uuid}")
        self.pollers.add(task)
        self._pollers_gauge.set(len(self.pollers))
        task.add_done_callback(self._poller_done)
        return True

    def _poller_done(self, task: asyncio.Task[None]) -> None:
        self.pollers.discard(task)
        self.budget.give()
        self._pollers_gauge.set(len(self.pollers))

    def _maybe_scale_up(self) -> None:
        now = time.monotonic()
        if now - self._last_scale >= SCALE_UP_INTERVAL and self._spawn():
            self._last_scale = now
            log.debug("sqs_scale_up", mapping=self.mapping.uuid, pollers=len(self.pollers))

    async def _poller(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            batch = _Batch()
            keeper = asyncio.create_task(self._keep_invisible(batch))
            try:
                full = await self._gather(batch)
                if batch.records:
                    failures = 0 if await self._process(batch) else failures + 1
            except AwsError as exc:
                if exc.code in NOT_FOUND_CODES or exc.code in FATAL_CODES:
                    self._problem(exc)
                    log.warning("sqs_queue_unavailable", mapping=self.mapping.uuid,
                                queue=self.queue, error=str(exc))
                    self.stopping_pollers()
                    return
                failures += 1
                self._errors["throttled" if exc.throttled else "error"].inc()
                log.warning("sqs_receive_failed", mapping=self.mapping.uuid, error=str(exc),
                            attempt=failures)
                full = False
            except Exception:  # a bug must not end polling: log it, back off, go on
                failures += 1
                log.exception("sqs_poller_error", mapping=self.mapping.uuid, attempt=failures)
                full = False
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            if failures:
                # function errors and SQS errors: back off (AWS scales down too)
                if await sleep_unless(backoff(failures, self.tuning.throttle_base_seconds,
                                              self.tuning.throttle_max_seconds),
                                      self.stopping):
                    return
                if len(self.pollers) > self.floor:
                    return
                continue
            if full:
                self._maybe_scale_up()
            elif not batch.records and len(self.pollers) > self.floor:
                return  # the queue is drained: scale down

    def stopping_pollers(self) -> None:
        """The queue went away: end every poller; ``run`` reconnects with backoff."""
        for task in list(self.pollers):
            if task is not asyncio.current_task():
                task.cancel()

    async def _gather(self, batch: _Batch) -> bool:
        """Receive up to BatchSize messages within the batching window and the payload limit.
        True when the queue had more to give (the batch filled up)."""
        m = self.mapping
        window = m.maximum_batching_window_in_seconds
        deadline = time.monotonic() + window
        size = 0
        while len(batch.records) < m.batch_size and not self.stopping.is_set():
            left = deadline - time.monotonic()
            if batch.records:
                if left <= 0:
                    return False
                wait = min(self.tuning.sqs_wait_time_seconds, max(0, int(left)))
            else:
                wait = self.tuning.sqs_wait_time_seconds
            want = min(MAX_RECEIVE, m.batch_size - len(batch.records))
            receive = asyncio.ensure_future(self.api.receive(self.url, want, wait))
            self._receiving.add(receive)
            try:
                raw = await receive
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                return False  # stop() ended the long poll: process what was gathered
            finally:
                self._receiving.discard(receive)
            self.last_poll = time.monotonic()
            self._reconnects = 0
            if not raw:
                if not batch.records or window == 0:
                    return False
                continue
            self.series.polled.inc(len(raw))
            received = len(raw)
            if self.filters is not None:
                raw = await self._drop_filtered(raw)
                if not raw:
                    if window == 0:
                        return received == want
                    continue
            records = self._encoder.encode(raw)
            overflow: list[str] = []
            for rec, msg in zip(records, raw, strict=True):
                grown = (payload_size([rec]) if not batch.records
                         else size + 1 + len(rec.fragment))
                if overflow or (batch.records and grown > MAX_PAYLOAD_BYTES):
                    overflow.append(msg["ReceiptHandle"])
                    continue
                size = grown
                batch.records.append(rec)
                batch.handles.append(msg["ReceiptHandle"])
            if overflow:  # over 6 MB: back to the queue at once for the next batch
                await self.api.change_visibility(self.url, overflow, 0)
                return True
            if window == 0:
                return received == want
        return len(batch.records) >= m.batch_size

    async def _drop_filtered(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages some filter matches; the others are deleted at once (consumed)."""
        assert self.filters is not None
        matches = self.filters.matches
        kept: list[dict[str, Any]] = []
        dropped: list[str] = []
        for msg in raw:
            if matches(SqsView(msg)):
                kept.append(msg)
            else:
                dropped.append(msg["ReceiptHandle"])
        if not dropped:
            return raw
        self.series.filtered.inc(len(dropped))
        missed = await self.api.delete(self.url, dropped)
        if missed:
            log.warning("sqs_delete_failed", mapping=self.mapping.uuid, count=missed)
        return kept

    async def _keep_invisible(self, batch: _Batch) -> None:
        """Extend the visibility of the batch's messages while it is gathered and processed."""
        every = max(0.5, self.visibility / 2)
        while True:
            await asyncio.sleep(every)
            if not batch.handles:
                continue
            try:
                await self.api.change_visibility(self.url, list(batch.handles), self.visibility)
            except AwsError as exc:
                log.warning("sqs_visibility_extend_failed", mapping=self.mapping.uuid,
                            error=str(exc))

    async def _process(self, batch: _Batch) -> bool:
        """Invoke once; delete what succeeded. True unless the invocation failed."""
        records = batch.records
        n = len(records)
        payload = build_payload(records)
        now = time.time()
        self.series.age.set(max(0.0, (now - records[0].arrival) * 1000.0))
        result = await self.series.invoke(self.invoker, payload, n)
        outcome = result.outcome
        if outcome is not Outcome.OK:
            log.info("sqs_batch_failed", mapping=self.mapping.uuid, outcome=outcome.value,
                     status=result.status, batch_size=n)
            return False
        failed: set[str] | None = set()
        if self.mapping.report_batch_item_failures:
            failed = failed_ids(result.payload, {r.seq for r in records})
            if failed is None:
                self._bad_responses.inc()
                self.series.failed.inc(n)
                log.warning("bad_partial_batch_response", mapping=self.mapping.uuid,
                            batch_size=n)
                return False
        assert failed is not None
        if failed and self.mapping.fifo:
            held: set[str] = set()  # a group's later messages wait behind its failed one
            for r in records:
                if r.seq in failed:
                    held.add(r.key)
                elif r.key in held:
                    failed.add(r.seq)
        done = [h for r, h in zip(records, batch.handles, strict=True) if r.seq not in failed]
        batch.handles = []  # no more visibility extensions: the failures reappear
        if done:
            missed = await self.api.delete(self.url, done)
            self._deleted.inc(len(done) - missed)
            if missed:
                log.warning("sqs_delete_failed", mapping=self.mapping.uuid, count=missed)
        self.series.processed.inc(len(done))
        if failed:
            self.series.failed.inc(len(failed))
        return True

    async def stop(self, grace: float) -> None:
        """Stop receiving; batches being processed finish within ``grace`` seconds."""
        self.stopping.set()
        for receive in list(self._receiving):  # a long poll has nothing to finish
            receive.cancel()
        tasks = list(self.pollers)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
