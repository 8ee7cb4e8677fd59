"""ActiveMQ consumer for Amazon MQ mappings, over STOMP (stomp.py)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import stomp
import stomp.exception
import structlog

from poller.batching import ActiveMqEncoder
from poller.config_model import Mapping, MqSource
from poller.observability import metrics
from poller.records import Record
from poller.sources.mq_broker import BrokerAuthError, BrokerLost, host_port, next_message

log = structlog.get_logger(__name__)

ACTIVEMQ_MAX_REDELIVERIES = 5  # Lambda: ActiveMQ's default policy, then the broker's DLQ


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
        host, port, tls = host_port(self.source.endpoints[0])
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
        got: Stomp | None = await next_message(self._queue, self._lost, wait)
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
