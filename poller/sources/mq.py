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
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import aio_pika
import aiormq
import aiormq.abc
import stomp
import stomp.exception
import structlog

from poller.batching import (
    MAX_PAYLOAD_BYTES,
    ActiveMqEncoder,
    RabbitMqEncoder,
    build_framed,
)
from poller.config_model import Mapping, MqSource, TuningConfig
from poller.events import mq as mq_events
from poller.filtering import MqView, ShapedFilters
from poller.invokers import Invoker, Outcome
from poller.observability import metrics
from poller.processing.processor import backoff, sleep_unless
from poller.records import Record
from poller.sources.kafka_security import KafkaAuthError, load_secret
from poller.sources.shards import MappingStatus

log = structlog.get_logger(__name__)

ACTIVEMQ_MAX_REDELIVERIES = 5  # Lambda: ActiveMQ's default policy, then the broker's DLQ
DEPTH_INTERVAL = 5.0  # seconds between queue depth reads
YIELDS_FOR_ARRIVALS = 4  # event loop turns a closing batch waits for messages being parsed
AUTHN_ERROR = "EVENT_SOURCE_AUTHN_ERROR"

SecretFetcher = Callable[[str], Awaitable[str]]


class BrokerAuthError(Exception):
    """The broker refused the credentials."""


class BrokerLost(Exception):
    """The connection or the consumer went away."""


class Broker(Protocol):
    """One consumer on one queue (RabbitMQ or ActiveMQ)."""

    depth: int | None  # messages ready, when the broker reports it

    async def open(self, username: str, password: str) -> None: ...

    async def get(self, wait: float | None) -> Any | None:
        """The next message (None after ``wait`` seconds); raises BrokerLost."""
        ...

    def pending(self) -> int: ...

    def encode(self, items: Sequence[Any]) -> list[Record]: ...

    async def ack(self, items: Sequence[Any]) -> None:
        """Acknowledge a batch (the oldest unacknowledged messages, in delivery order)."""
        ...

    async def ack_each(self, items: Sequence[Any]) -> None:
        """Acknowledge these messages only (filtered out ones between kept ones)."""
        ...

    async def redeliver(self, items: Sequence[Any]) -> None: ...

    async def refresh_depth(self) -> None: ...

    async def close(self) -> None: ...


def _tag(message: aiormq.abc.DeliveredMessage) -> int:
    return int(message.delivery_tag or 0)


def _host_port(endpoint: str) -> tuple[str, int, bool]:
    parts = urlsplit(endpoint)
    return parts.hostname or "", int(parts.port or 0), parts.scheme in ("amqps", "stomp+ssl")


class RabbitMqBroker:
    """A RabbitMQ consumer on aio-pika's connection, reading raw deliveries (aiormq) with a
    prefetch of BatchSize; acks and nacks a batch with one ``multiple`` frame."""

    def __init__(self, source: MqSource, mapping: Mapping) -> None:
        self.source = source
        self.mapping = mapping
        self.depth: int | None = None
        self._queue: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()
        self._lost: asyncio.Future[None] | None = None
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._encoder = RabbitMqEncoder()

    async def open(self, username: str, password: str) -> None:
        host, port, tls = _host_port(self.source.endpoints[0])
        self._lost = asyncio.get_running_loop().create_future()
        try:
            self._connection = await aio_pika.connect(
                host=host, port=port, login=username, password=password,
                virtualhost=self.source.virtual_host, ssl=tls,
                ssl_context=ssl.create_default_context() if tls else None,
                client_properties={"connection_name": self.mapping.uuid}, timeout=30)
        except aiormq.exceptions.ProbableAuthenticationError as exc:
            raise BrokerAuthError(str(exc)) from None
        self._connection.close_callbacks.add(self._on_close)
        channel = await self._connection.channel(publisher_confirms=False)
        channel.close_callbacks.add(self._on_close)
        await channel.set_qos(prefetch_count=min(self.mapping.batch_size, 65535))
        raw = await channel.get_underlay_channel()
        self._channel = raw
        declared = await raw.queue_declare(self.source.queue, passive=True)
        self.depth = declared.message_count
        await raw.basic_consume(self.source.queue, self._on_message, no_ack=False,
                                consumer_tag=f"esm-{self.mapping.uuid}")

    def _on_close(self, _sender: Any, exc: BaseException | None = None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        self._queue.put_nowait(message)

    async def get(self, wait: float | None) -> aiormq.abc.DeliveredMessage | None:
        got: aiormq.abc.DeliveredMessage | None = await _next(self._queue, self._lost, wait)
        return got

    def pending(self) -> int:
        return self._queue.qsize()

    def encode(self, items: Sequence[aiormq.abc.DeliveredMessage]) -> list[Record]:
        records: list[Record] = self._encoder.encode(items)
        return records

    async def ack(self, items: Sequence[aiormq.abc.DeliveredMessage]) -> None:
        assert self._channel is not None
        if len(items) == 1:
            await self._channel.basic_ack(_tag(items[0]))
        elif items:
            await self._channel.basic_ack(max(_tag(m) for m in items), multiple=True)

    async def ack_each(self, items: Sequence[aiormq.abc.DeliveredMessage]) -> None:
        assert self._channel is not None
        for m in items:
            await self._channel.basic_ack(_tag(m))

    async def redeliver(self, items: Sequence[aiormq.abc.DeliveredMessage]) -> None:
        assert self._channel is not None
        if items:
            await self._channel.basic_nack(max(_tag(m) for m in items), multiple=True,
                                           requeue=True)

    async def refresh_depth(self) -> None:
        if self._connection is None:
            return
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(self.source.queue, passive=True)
            self.depth = declared.declaration_result.message_count
        except aiormq.exceptions.ChannelNotFoundEntity:
            self._on_close(None)  # the queue was deleted: reconnect (and report it)
            raise
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = self._channel = None


class _StompListener(stomp.ConnectionListener):  # type: ignore[misc]
    """Runs on stomp.py's receiver thread: hands frames to the event loop."""

    def __init__(self, broker: ActiveMqBroker, loop: asyncio.AbstractEventLoop) -> None:
        self.broker = broker
        self.loop = loop

    def on_message(self, frame: Any) -> None:
        self.loop.call_soon_threadsafe(self.broker._on_message, frame.headers, frame.body)

    def on_error(self, frame: Any) -> None:
        self.loop.call_soon_threadsafe(self.broker._on_error, frame.headers.get("message", ""))

    def on_disconnected(self) -> None:
        self.loop.call_soon_threadsafe(self.broker._on_lost)


Stomp = tuple[dict[str, str], bytes, bool]  # headers, body, is a BytesMessage


class ActiveMqBroker:
    """An ActiveMQ consumer over STOMP (stomp.py; its socket reads on its own thread, frames
    are handed to the event loop, writes go through a worker thread). A failed batch is
    redelivered by re-subscribing (the broker hands every unacknowledged message back, in
    order, ``redelivered``); a message that fails after ACTIVEMQ_MAX_REDELIVERIES
    redeliveries is NACKed, which sends it to the broker's dead-letter queue."""

    def __init__(self, source: MqSource, mapping: Mapping) -> None:
        self.source = source
        self.mapping = mapping
        self.depth: int | None = None  # STOMP does not report queue depth
        self._queue: asyncio.Queue[Stomp] = asyncio.Queue()
        self._lost: asyncio.Future[None] | None = None
        self._conn: stomp.Connection12 | None = None
        self._sub = 0
        self._error = ""
        self._failures: dict[str, int] = {}
        self._encoder = ActiveMqEncoder()
        self.dead_lettered = metrics.mq_messages_dead_lettered.labels(mapping.uuid)

    @property
    def destination(self) -> str:
        return f"/queue/{self.source.queue}"

    async def open(self, username: str, password: str) -> None:
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        host, port, tls = _host_port(self.source.endpoints[0])
        conn = stomp.Connection12([(host, port)], auto_decode=False, heartbeats=(10000, 10000),
                                  reconnect_attempts_max=1)
        if tls:
            # verified against the system trust store, host name included
            conn.set_ssl(for_hosts=[(host, port)], ssl_version=ssl.PROTOCOL_TLS_CLIENT)
        conn.set_listener("esm", _StompListener(self, loop))
        self._conn = conn
        try:
            await asyncio.to_thread(conn.connect, username, password, wait=True,
                                    headers={"client-id": f"esm-{self.mapping.uuid}"})
        except stomp.exception.ConnectFailedException:
            message = self._error or "could not connect (network or TLS failure)"
            if "password" in message.lower() or "user" in message.lower():
                raise BrokerAuthError(message) from None
            raise BrokerLost(message) from None
        await self._subscribe()

    async def _subscribe(self) -> None:
        assert self._conn is not None
        self._sub += 1
        await asyncio.to_thread(
            self._conn.subscribe, self.destination, id=str(self._sub), ack="client-individual",
            headers={"activemq.prefetchSize": str(self.mapping.batch_size)})

    def _on_message(self, headers: dict[str, str], body: bytes) -> None:
        if headers.get("subscription") == str(self._sub):
            # ActiveMQ writes content-length for BytesMessages only
            self._queue.put_nowait((headers, body or b"", "content-length" in headers))

    def _on_error(self, message: str) -> None:
        self._error = message
        log.warning("activemq_error_frame", mapping=self.mapping.uuid, error=message)

    def _on_lost(self) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def get(self, wait: float | None) -> Stomp | None:
        got: Stomp | None = await _next(self._queue, self._lost, wait)
        return got

    def pending(self) -> int:
        return self._queue.qsize()

    def encode(self, items: Sequence[Stomp]) -> list[Record]:
        records: list[Record] = self._encoder.encode(items, int(time.time() * 1000))
        return records

    async def ack(self, items: Sequence[Stomp]) -> None:
        conn = self._conn
        assert conn is not None
        for headers, _body, _b in items:
            self._failures.pop(headers.get("message-id", ""), None)
        await asyncio.to_thread(_each, conn.ack, [h["ack"] for h, _b, _k in items])

    async def ack_each(self, items: Sequence[Stomp]) -> None:
        await self.ack(items)

    async def redeliver(self, items: Sequence[Stomp]) -> None:
        conn = self._conn
        assert conn is not None
        poison: list[str] = []
        for headers, _body, _b in items:
            mid = headers.get("message-id", "")
            count = self._failures[mid] = self._failures.get(mid, 0) + 1
            if count > ACTIVEMQ_MAX_REDELIVERIES:
                self._failures.pop(mid, None)
                poison.append(headers["ack"])
        if poison:
            await asyncio.to_thread(_each, conn.nack, poison)
            self.dead_lettered.inc(len(poison))
        # every unacknowledged message (the batch and what was prefetched after it) comes
        # back in order on the next subscription
        while not self._queue.empty():
            self._queue.get_nowait()
        await asyncio.to_thread(conn.unsubscribe, str(self._sub))
        await self._subscribe()

    async def refresh_depth(self) -> None:
        return None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(conn.disconnect)


def _each(call: Callable[[str], Any], ids: list[str]) -> None:
    for ident in ids:
        call(ident)


async def _next(queue: asyncio.Queue[Any], lost: asyncio.Future[None] | None,
                wait: float | None) -> Any:
    if not queue.empty():
        return queue.get_nowait()
    if lost is None or lost.done():
        raise BrokerLost("connection closed")
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait({getter, lost}, timeout=wait,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter in done:
        return getter.result()
    if lost in done:
        raise BrokerLost("connection closed")
    return None


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
        self._polled = metrics.records_polled.labels(*labels)
        self._invoked = metrics.records_invoked.labels(*labels)
        self._processed = metrics.records_processed.labels(*labels)
        self._failed = metrics.records_failed.labels(*labels)
        self._filtered = metrics.records_filtered.labels(*labels)
        self._age = metrics.iterator_age.labels(*labels)
        self._inflight = metrics.inflight_records.labels(*labels)
        self._depth = metrics.mq_queue_depth.labels(*labels)
        self._acked = metrics.mq_messages_acked.labels(mapping.uuid)
        self._redelivered = metrics.mq_messages_redelivered.labels(mapping.uuid)
        self._oversize = metrics.oversize_records.labels(mapping.uuid)
        self._throttles = metrics.throttles.labels(mapping.uuid, "invoke")
        self._duration = {o: metrics.invoke_duration.labels(mapping.uuid, o.value)
                          for o in Outcome}
        self._batch_records = metrics.batch_records.labels(mapping.uuid)
        self._batch_bytes = metrics.batch_bytes.labels(mapping.uuid)
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
            await broker.redeliver(items)
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
                self._polled.inc(len(got))
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
            self._filtered.inc(len(dropped))
            await broker.ack_each(dropped)
            self._acked.inc(len(dropped))
        return kept_items, kept

    async def _process(self, broker: Broker, items: list[Any], records: list[Record]) -> bool:
        n = len(records)
        payload = build_framed(self._head, records, tail=self._tail)
        self._age.set(max(0.0, (time.time() - records[0].arrival) * 1000.0)
                      if records[0].arrival else 0.0)
        self._batch_records.observe(n)
        self._batch_bytes.observe(len(payload))
        self._invoked.inc(n)
        self._inflight.inc(n)
        t0 = time.perf_counter()
        try:
            result = await self.invoker.invoke(payload)
        finally:
            self._inflight.dec(n)
        self._duration[result.outcome].observe(time.perf_counter() - t0)
        if result.outcome is not Outcome.OK:
            self._failed.inc(n)
            if result.outcome is Outcome.THROTTLED:
                self._throttles.inc()
            log.info("mq_batch_failed", mapping=self.mapping.uuid, outcome=result.outcome.value,
                     status=result.status, batch_size=n)
            return False
        await broker.ack(items)
        self._acked.inc(n)
        self._processed.inc(n)
        return True

    async def stop(self, grace: float) -> None:
        """Stop consuming; a batch being processed finishes within ``grace`` seconds; what is
        not acknowledged goes back to the broker with the connection."""
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), grace + 2.0)

