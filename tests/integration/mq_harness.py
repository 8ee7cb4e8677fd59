"""Shared pieces for the Amazon MQ tests: a recording handler for ``aws:rmq`` / ``aws:mq``
events, mappings pointing at the test brokers, and small publish/drain helpers (aio-pika for
RabbitMQ, stomp.py for ActiveMQ)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import stomp

from poller.config_model import KafkaAuth, Mapping, MqSource, SecretRef, Target
from poller.observability import metrics
from tests.helpers import wait_for, wait_until
from tests.infra.servers import MQ_PASSWORD, MQ_USER
from tests.integration.pipeline_harness import counter, running
from tests.integration.recorder import BatchRecorder
from tests.integration.source_harness import function_host, source_config

BROKER_ARN = "arn:aws:mq:us-east-1:000000000000:broker:test:b-0123456789ab-cdef"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:mq-user"


@dataclass
class MqRecorder(BatchRecorder[dict[str, Any], str]):
    """A Lambda handler recording every MQ event and the decoded data of its messages;
    ``fail_on(data)`` True makes it raise."""

    fail_on: Callable[[str], bool] = lambda data: False

    @staticmethod
    def messages(event: dict[str, Any]) -> list[dict[str, Any]]:
        if event["eventSource"] == "aws:rmq":
            return [m for batch in event["rmqMessagesByQueue"].values() for m in batch]
        return list(event["messages"])

    def split(self, event: dict[str, Any], n: int) -> tuple[dict[str, Any], list[str]]:
        return event, [base64.b64decode(m["data"]).decode("utf-8", "replace")
                       for m in self.messages(event)]

    def respond(self, event: dict[str, Any], items: list[str]) -> Any:
        if any(self.fail_on(d) for d in items):
            raise RuntimeError("poison message")
        return None

    def seen(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for e in self.events for m in self.messages(e)]

    def done(self) -> list[str]:
        with self.lock:
            return list(self.ok)


def secret_file(tmp_path: Path, password: str = MQ_PASSWORD) -> Path:
    path = tmp_path / "mq-secret.json"
    path.write_text(json.dumps({"username": MQ_USER, "password": password}))
    return path


def mq_mapping(endpoint: str, queue: str, secret: Path, **kw: Any) -> Mapping:
    engine = "rabbitmq" if endpoint.startswith("amqp") else "activemq"
    base: dict[str, Any] = dict(
        uuid=f"m-{uuid.uuid4().hex[:12]}", event_source_arn=BROKER_ARN, function_name="recorder",
        batch_size=10, maximum_batching_window_in_seconds=0.2, target=Target(type="lambda"),
        mq=MqSource(engine=engine, queue=queue, endpoints=(endpoint,),  # type: ignore[arg-type]
                    auth=KafkaAuth("BASIC_AUTH", SECRET_ARN, SecretRef("file", str(secret)))))
    base.update(kw)
    return Mapping(**base)


async def rabbit(endpoint: str) -> aio_pika.abc.AbstractConnection:
    parts = urlsplit(endpoint)
    return await aio_pika.connect(host=parts.hostname or "", port=parts.port or 0,
                                  login=MQ_USER, password=MQ_PASSWORD)


async def rabbit_publish(endpoint: str, queue: str, bodies: list[str],
                         **properties: Any) -> None:
    connection = await rabbit(endpoint)
    async with connection:
        channel = await connection.channel()
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 **properties), routing_key=queue)


async def rabbit_depth(endpoint: str, queue: str) -> int:
    connection = await rabbit(endpoint)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


def _stomp(endpoint: str) -> stomp.Connection12:
    parts = urlsplit(endpoint)
    conn = stomp.Connection12([(parts.hostname, parts.port)], auto_decode=False,
                              auto_content_length=False)
    conn.connect(MQ_USER, MQ_PASSWORD, wait=True)
    return conn


def _amq_send(endpoint: str, queue: str, bodies: list[str | bytes],
              headers: dict[str, str]) -> None:
    conn = _stomp(endpoint)
    try:
        for body in bodies:
            extra = {"content-length": str(len(body))} if isinstance(body, bytes) else {}
            conn.send(f"/queue/{queue}", body, headers={"persistent": "true", **headers,
                                                        **extra})
    finally:
        conn.disconnect()


async def activemq_publish(endpoint: str, queue: str, bodies: list[str | bytes],
                           **headers: str) -> None:
    await asyncio.to_thread(_amq_send, endpoint, queue, bodies, headers)


class _Collect(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.frames: list[Any] = []

    def on_message(self, frame: Any) -> None:
        self.frames.append(frame)


def _amq_drain(endpoint: str, queue: str, expect: int, timeout: float) -> list[bytes]:
    conn = _stomp(endpoint)
    collect = _Collect()
    conn.set_listener("collect", collect)
    try:
        conn.subscribe(f"/queue/{queue}", id="drain", ack="auto")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: len(collect.frames) >= expect, timeout)
        return [f.body for f in collect.frames]
    finally:
        conn.disconnect()


async def activemq_drain(endpoint: str, queue: str, expect: int,
                         deadline: float = 30) -> list[bytes]:
    """The messages of the queue (consumed) once ``expect`` have arrived or at the deadline."""
    return await asyncio.to_thread(_amq_drain, endpoint, queue, expect, deadline)


async def check_bad_credentials(endpoint: str, queue: str, tmp_path: Path,
                                refusal: str) -> None:
    """A wrong password: the mapping is in Problem (EVENT_SOURCE_AUTHN_ERROR, the broker's
    ``refusal`` text, never the password), /readyz says so, and it retries with backoff."""
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(endpoint, queue, secret_file(tmp_path, "wrong"))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")) as service:
            runner = service.mq_mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 20)
            assert runner.status.reason.startswith("EVENT_SOURCE_AUTHN_ERROR")
            assert refusal in runner.status.reason and "wrong" not in runner.status.reason
            ready, text = service.readiness()
            assert not ready and "EVENT_SOURCE_AUTHN_ERROR" in text

            def authn() -> float:
                return counter(metrics.mq_reconnects, mapping.uuid, kind="authn")

            await wait_for(lambda: authn() >= 2, 20)
            assert authn() <= 4  # backoff between attempts (1 s, 2 s, ...): no tight loop
            task = next(t for t in service._tasks if t.get_name() == f"mapping-{mapping.uuid}")
            assert not task.done()
    assert rec.events == []


async def check_restart_loses_nothing(endpoint: str, queue: str, tmp_path: Path,
                                      publish: Callable[[list[str]], Awaitable[None]],
                                      stop: Callable[[], None],
                                      restart: Callable[[], None]) -> None:
    """Messages published before and after a broker restart in the middle of consuming all
    reach the function; the mapping goes to Problem and back to Enabled."""
    first = [f"a{i}" for i in range(60)]
    await publish(first)
    rec = MqRecorder(delay=0.05)
    async with function_host(rec) as host:
        mapping = mq_mapping(endpoint, queue, secret_file(tmp_path), batch_size=5)
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")) as service:
            await wait_for(lambda: len(rec.done()) >= 10, 30)
            stop()
            runner = service.mq_mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 30)
            restart()
            second = [f"b{i}" for i in range(20)]
            await publish(second)
            await wait_for(lambda: set(first + second) <= set(rec.done()), 90)
            await wait_for(lambda: runner.status.state == "Enabled", 30)
            assert counter(metrics.mq_reconnects, mapping.uuid, kind="connection") >= 1


async def check_delivered_in_order(endpoint: str, queue: str, tmp_path: Path,
                                   bodies: list[str]) -> None:
    """``bodies``, already on the queue, each reach one successful invocation, in queue order,
    in batches of at most BatchSize (25)."""
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(endpoint, queue, secret_file(tmp_path), batch_size=25)
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")):
            await wait_for(lambda: len(rec.done()) == len(bodies), 60)
    assert rec.done() == bodies
    assert max(len(MqRecorder.messages(e)) for e in rec.events) <= 25


async def check_order_holds_across_a_failure(endpoint: str, queue: str, tmp_path: Path,
                                             publish: Callable[[list[str]],
                                                               Awaitable[None]]) -> None:
    """A batch that fails goes back together with what the broker delivered while it was out:
    every kept message reaches a successful invocation exactly once, in queue order (the
    messages published during the failing invocation must not overtake it)."""
    bodies = [json.dumps({"n": i, "keep": i % 3 != 0}) for i in range(90)]
    kept = [b for b in bodies if json.loads(b)["keep"]]
    failing = threading.Event()

    def fail_once(data: str) -> bool:
        if data == kept[10] and not failing.is_set():
            failing.set()
            time.sleep(1.0)  # the rest is published while this batch is out
            return True
        return False

    await publish(bodies[:30])
    rec = MqRecorder(fail_on=fail_once)
    async with function_host(rec) as host:
        mapping = mq_mapping(endpoint, queue, secret_file(tmp_path), batch_size=100,
                             maximum_batching_window_in_seconds=0.0,
                             filter_patterns=('{"data": {"keep": [true]}}',))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")):
            await wait_for(failing.is_set, 30)
            await publish(bodies[30:])
            await wait_for(lambda: len(rec.done()) >= len(kept), 60)
            assert counter(metrics.mq_messages_redelivered, mapping.uuid) >= 1
    assert rec.done() == kept
