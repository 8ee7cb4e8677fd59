"""Amazon MQ queues (RabbitMQ and ActiveMQ): one consumer per mapping, batches in the
``aws:rmq`` / ``aws:mq`` event shapes, acknowledged only after the function succeeded.

AWS's MQ semantics, not the stream processor's: no checkpoint, no bisect, no on-failure
destination. A batch closes at BatchSize, the 6 MB payload limit or the batching window. On a
function error the batch goes back to the broker, whose redelivery and dead-lettering apply:
RabbitMQ gets a ``basic.nack`` with requeue (a quorum queue's ``x-delivery-limit`` or the
queue's dead-letter exchange moves a poison message on); for ActiveMQ the poller does what
Lambda's JMS consumer does with ActiveMQ's default redelivery policy: the messages are
redelivered (``redelivered: true``) and after ``maximumRedeliveries`` (5) failed redeliveries a
message is sent to the broker's DLQ. Messages FilterCriteria drop are acknowledged at once.
Bad credentials put the mapping in the Problem state (EVENT_SOURCE_AUTHN_ERROR); every lost or
refused connection is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
import aiormq.abc
import stomp
import stomp.exception
import structlog

from poller.batching import MAX_PAYLOAD_BYTES, build_framed
from poller.config_model import Mapping, TuningConfig
from poller.events import mq as mq_events
from poller.filtering import MqView, ShapedFilters
from poller.invokers import Invoker, Outcome
from poller.observability import metrics
from poller.processing.processor import backoff, sleep_unless
from poller.records import Record
from poller.sources.activemq import ActiveMqBroker
from poller.sources.kafka_security import KafkaAuthError, load_secret
from poller.sources.mq_broker import Broker, BrokerAuthError, BrokerLost
from poller.sources.queue_metrics import QueueMetrics
from poller.sources.rabbitmq import RabbitMqBroker
from poller.sources.shards import MappingStatus

log = structlog.get_logger(__name__)

DEPTH_INTERVAL = 5.0  # seconds between queue depth reads
YIELDS_FOR_ARRIVALS = 4  # event loop turns a closing batch waits for messages being parsed
AUTHN_ERROR = "EVENT_SOURCE_AUTHN_ERROR"

SecretFetcher = Callable[[str], Awaitable[str]]


def make_broker(mapping: Mapping) -> Broker:
    assert mapping.mq is not None
    if mapping.mq.engine == "rabbitmq":
        return RabbitMqBroker(mapping.mq, mapping)
    return ActiveMqBroker(mapping.mq, mapping)


class MqMapping:
    """Runs one Amazon MQ mapping: connect, gather a batch, invoke, ack or hand back."""

    def __init__(self, mapping: Mapping, invoker: Invoker, tuning: TuningConfig,
                 fetch_secret: SecretFetcher | None = None,
                 broker_factory: Callable[[Mapping], Broker] = make_broker) -> None:
        assert mapping.mq is not None
        self.mapping = mapping
        self.source = mapping.mq
        self.invoker = invoker
        self.tuning = tuning
        self.fetch_secret = fetch_secret
        self.broker_factory = broker_factory
        self.status = MappingStatus(mapping.uuid)
        self.stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self.broker: Broker | None = None
        self.last_poll = time.monotonic()
        if self.source.engine == "rabbitmq":
            self._head, self._tail = mq_events.rabbitmq_envelope(
                mapping.event_source_arn, self.source.queue, self.source.virtual_host)
        else:
            self._head, self._tail = mq_events.activemq_envelope(mapping.event_source_arn)
        self._fixed = len(self._head) + len(self._tail)
        self.filters = (ShapedFilters(mapping.filter_patterns, ("data",))
                        if mapping.filter_patterns else None)
        self._carry: tuple[Any, Record] | None = None  # over 6 MB with the batch: next batch
        labels = (mapping.uuid, self.source.queue)
        self.series = QueueMetrics(mapping.uuid, self.source.queue)
        self._depth = metrics.mq_queue_depth.labels(*labels)
        self._acked = metrics.mq_messages_acked.labels(mapping.uuid)
        self._redelivered = metrics.mq_messages_redelivered.labels(mapping.uuid)
        self._oversize = metrics.oversize_records.labels(mapping.uuid)
        self._reconnects = {k: metrics.mq_reconnects.labels(mapping.uuid, k)
                            for k in ("authn", "connection", "queue")}
        metrics.seconds_since_last_poll.labels(*labels).set_function(
            lambda: time.monotonic() - self.last_poll)

    @property
    def polling(self) -> bool:
        return self.status.state == "Enabled"

    async def _credentials(self) -> tuple[str, str]:
        doc = await load_secret(self.source.auth, self.fetch_secret)
        user, password = doc.get("username"), doc.get("password")
        if not isinstance(user, str) or not user or not isinstance(password, str):
            raise KafkaAuthError(f"secret {self.source.auth.uri} (BASIC_AUTH) needs "
                                 '"username" and "password"')
        return user, password

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._stopped.set()

    async def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            broker = self.broker = self.broker_factory(self.mapping)
            depth_task: asyncio.Task[None] | None = None
            try:
                user, password = await self._credentials()
                await broker.open(user, password)
                self.status.set("Enabled", "consuming")
                if broker.depth is not None:
                    self._depth.set(broker.depth)
                depth_task = asyncio.create_task(self._watch_depth(broker))
                failures = 0
                await self._consume(broker)
            except KafkaAuthError as exc:
                self._reconnects["authn"].inc()
                self.status.set("Problem", f"{AUTHN_ERROR}: {exc}")
            except BrokerAuthError as exc:
                self._reconnects["authn"].inc()
                self.status.set("Problem", f"{AUTHN_ERROR}: the broker refused the credentials "
                                f"({exc})")
            except (aiormq.exceptions.ChannelNotFoundEntity,
                    aiormq.exceptions.ChannelAccessRefused) as exc:
                self._reconnects["queue"].inc()
                self.status.set("Problem", f"queue {self.source.queue}: {exc}")
            except (BrokerLost, ConnectionError, OSError, TimeoutError,
                    aiormq.exceptions.AMQPError, stomp.exception.StompException) as exc:
                self._reconnects["connection"].inc()
                self.status.set("Problem", f"broker connection lost: {type(exc).__name__}"
                                + (f": {exc}" if str(exc) else ""))
            except Exception:  # a bug must not end the mapping: log it, back off, go on
                self._reconnects["connection"].inc()
                log.exception("mq_consumer_error", mapping=self.mapping.uuid)
                self.status.set("Problem", "internal error (see the log)")
            finally:
                if depth_task is not None:
                    depth_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await depth_task
                self._carry = None  # unacknowledged: the broker hands it out again
                await broker.close()
            if self.stopping.is_set():
                break
            failures += 1
            if await sleep_unless(backoff(failures, 1.0, 60.0), self.stopping):
                break

    async def _watch_depth(self, broker: Broker) -> None:
        while True:
            await asyncio.sleep(DEPTH_INTERVAL)
            with contextlib.suppress(Exception):
                await broker.refresh_depth()
                if broker.depth is not None:
                    self._depth.set(broker.depth)

    async def _consume(self, broker: Broker) -> None:
        failures = 0
        while not self.stopping.is_set():
            items, records = await self._gather(broker)
            if not records or self.stopping.is_set():
                continue  # on stop, what was gathered goes back with the connection
            if await self._process(broker, items, records):
                failures = 0
                continue
            failures += 1
            await broker.redeliver(items)  # also what was received after the batch
            self._carry = None
            self._redelivered.inc(len(items))
            if await sleep_unless(backoff(failures, self.tuning.retry_base_seconds,
                                          self.tuning.retry_max_seconds), self.stopping):
                return

    async def _gather(self, broker: Broker) -> tuple[list[Any], list[Record]]:
        """Messages for one invocation: up to BatchSize, within the window and 6 MB."""
        m = self.mapping
        items: list[Any] = []
        records: list[Record] = []
        size = self._fixed
        deadline: float | None = None
        while len(records) < m.batch_size and not self.stopping.is_set():
            if self._carry is not None:
                got = [self._carry[0]]
                encoded = [self._carry[1]]
                self._carry = None
            else:
                if deadline is None:
                    wait = 1.0  # wake up now and then to notice stop()
                else:
                    wait = deadline - time.monotonic()
                    if wait <= 0 and not await self._more_arriving(broker):
                        break
                first = await broker.get(max(wait, 0.0))
                if first is None:
                    if deadline is None:
                        continue
                    break
                got = [first]
                while broker.pending() and len(got) < m.batch_size - len(records):
                    nxt = await broker.get(0)
                    if nxt is None:
                        break
                    got.append(nxt)
                self.last_poll = time.monotonic()
                self.series.polled.inc(len(got))
                encoded = broker.encode(got)
                got, encoded = await self._drop_filtered(broker, got, encoded)
            for item, rec in zip(got, encoded, strict=True):
                grown = size + len(rec.fragment) + (1 if records else 0)
                if grown > MAX_PAYLOAD_BYTES:
                    if not records:  # alone over 6 MB: Lambda drops it
                        self._oversize.inc()
                        log.warning("mq_message_too_large", mapping=m.uuid,
                                    bytes=len(rec.fragment))
                        await broker.ack([item])
                        self._acked.inc()
                        continue
                    self._carry = (item, rec)
                    return items, records
                size = grown
                items.append(item)
                records.append(rec)
            if records and deadline is None:
                deadline = time.monotonic() + m.maximum_batching_window_in_seconds
        return items, records

    @staticmethod
    async def _more_arriving(broker: Broker) -> bool:
        """Whether messages already on their way (in the socket, being parsed) turn up within
        a few turns of the event loop: they join the batch instead of waiting for the next."""
        for _ in range(YIELDS_FOR_ARRIVALS):
            if broker.pending():
                return True
            await asyncio.sleep(0)
        return bool(broker.pending())

    async def _drop_filtered(self, broker: Broker, items: list[Any],
                             records: list[Record]) -> tuple[list[Any], list[Record]]:
        if self.filters is None:
            return items, records
        matches = self.filters.matches
        kept_items: list[Any] = []
        kept: list[Record] = []
        dropped: list[Any] = []
        for item, rec in zip(items, records, strict=True):
            if matches(MqView(rec.fragment)):
                kept_items.append(item)
                kept.append(rec)
            else:
                dropped.append(item)
        if dropped:  # acknowledged at once, as Lambda does
            self.series.filtered.inc(len(dropped))
            await broker.ack_each(dropped)
            self._acked.inc(len(dropped))
        return kept_items, kept

    async def _process(self, broker: Broker, items: list[Any], records: list[Record]) -> bool:
        n = len(records)
        payload = build_framed(self._head, records, tail=self._tail)
        self.series.age.set(max(0.0, (time.time() - records[0].arrival) * 1000.0)
                            if records[0].arrival else 0.0)
        result = await self.series.invoke(self.invoker, payload, n)
        if result.outcome is not Outcome.OK:
            log.info("mq_batch_failed", mapping=self.mapping.uuid, outcome=result.outcome.value,
                     status=result.status, batch_size=n)
            return False
        await broker.ack(items)
        self._acked.inc(n)
        self.series.processed.inc(n)
        return True

    async def stop(self, grace: float) -> None:
        """Stop consuming; a batch being processed finishes within ``grace`` seconds; what is
        not acknowledged goes back to the broker with the connection."""
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), grace + 2.0)

