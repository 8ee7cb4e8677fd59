"""RabbitMQ consumer for Amazon MQ mappings: aio-pika's connection, raw aiormq deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
import aiormq.abc

from poller.batching import RabbitMqEncoder
from poller.config_model import Mapping, MqSource
from poller.records import Record
from poller.sources.mq_broker import BrokerAuthError, host_port, next_message


def _tag(message: aiormq.abc.DeliveredMessage) -> int:
    return int(message.delivery_tag or 0)


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
        self._consumer_tag = f"esm-{mapping.uuid}"

    async def open(self, username: str, password: str) -> None:
        host, port, tls = host_port(self.source.endpoints[0])
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
                                consumer_tag=self._consumer_tag)

    def _on_close(self, _sender: Any, exc: BaseException | None = None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        self._queue.put_nowait(message)

    async def get(self, wait: float | None) -> aiormq.abc.DeliveredMessage | None:
        got: aiormq.abc.DeliveredMessage | None = await next_message(self._queue, self._lost, wait)
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
        """Hands the batch back together with everything delivered after it, so the broker
        puts them all back in their places and the queue's order holds: the consumer is
        cancelled first (no delivery can slip in between), then resumed."""
        channel = self._channel
        assert channel is not None
        await channel.basic_cancel(self._consumer_tag)
        tags = [_tag(m) for m in items]
        while not self._queue.empty():
            tags.append(_tag(self._queue.get_nowait()))
        if tags:
            await channel.basic_nack(max(tags), multiple=True, requeue=True)
        await channel.basic_consume(self.source.queue, self._on_message, no_ack=False,
                                    consumer_tag=self._consumer_tag)

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
