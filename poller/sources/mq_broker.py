"""What the Amazon MQ mapping (poller.sources.mq) needs of a broker client: one consumer on
one queue. Implemented for RabbitMQ (poller.sources.rabbitmq) and ActiveMQ
(poller.sources.activemq)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from poller.records import Record


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

    async def redeliver(self, items: Sequence[Any]) -> None:
        """Hands back the batch and every message received after it, in queue order."""
        ...

    async def refresh_depth(self) -> None: ...

    async def close(self) -> None: ...


def host_port(endpoint: str) -> tuple[str, int, bool]:
    """(host, port, TLS) of an endpoint URL (amqps:// and stomp+ssl:// are TLS)."""
    parts = urlsplit(endpoint)
    return parts.hostname or "", int(parts.port or 0), parts.scheme in ("amqps", "stomp+ssl")


async def next_message(queue: asyncio.Queue[Any], lost: asyncio.Future[None] | None,
                       wait: float | None) -> Any:
    """The next item of ``queue`` (None after ``wait`` seconds); BrokerLost once ``lost`` is
    done and the queue is empty."""
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
