"""RabbitMQ source end to end: a real broker (Debian's rabbitmq-server), the real service, the
function host over the Lambda Invoke API."""

from __future__ import annotations

import base64
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from poller.observability import metrics as m
from tests.helpers import unique_name, wait_for
from tests.infra.servers import rabbitmq_ports, start_rabbitmq
from tests.integration.mq_harness import (
    BROKER_ARN,
    MqRecorder,
    check_bad_credentials,
    check_delivered_in_order,
    check_order_holds_across_a_failure,
    check_restart_loses_nothing,
    mq_mapping,
    rabbit,
    rabbit_depth,
    rabbit_publish,
    secret_file,
)
from tests.integration.pipeline_harness import counter, running
from tests.integration.source_harness import function_host, source_config


async def declare(endpoint: str, queue: str, **arguments: Any) -> None:
    connection = await rabbit(endpoint)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments=arguments or None)


async def test_event_shape_and_ack_on_success(rabbitmq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    await rabbit_publish(rabbitmq_endpoint, queue, ['{"n":1}', "two"],
                         content_type="text/plain", headers={"header1": "value1", "num": 10},
                         priority=3, expiration=60, correlation_id="c-1")
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(rabbitmq_endpoint, queue, secret_file(tmp_path))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")) as service:
            await wait_for(lambda: len(rec.done()) == 2, 30)
            assert service.mq_mappings[mapping.uuid].status.state == "Enabled"
            await wait_for(lambda: counter(m.mq_messages_acked, mapping.uuid) == 2, 10)
    assert await rabbit_depth(rabbitmq_endpoint, queue) == 0  # acked: not back after stop
    event = rec.events[0]
    assert list(event) == ["eventSource", "eventSourceArn", "rmqMessagesByQueue"]
    assert event["eventSource"] == "aws:rmq" and event["eventSourceArn"] == BROKER_ARN
    assert list(event["rmqMessagesByQueue"]) == [f"{queue}::/"]
    first = rec.seen()[0]
    assert list(first) == ["basicProperties", "redelivered", "data"]
    props = first["basicProperties"]
    assert props["headers"] == {"header1": {"bytes": [118, 97, 108, 117, 101, 49]}, "num": 10}
    assert (props["contentType"], props["priority"], props["deliveryMode"]) == (
        "text/plain", 3, 2)
    assert (props["expiration"], props["correlationId"], props["bodySize"]) == (
        "60000", "c-1", 7)
    assert first["redelivered"] is False
    assert base64.b64decode(first["data"]) == b'{"n":1}'
    assert rec.done() == ['{"n":1}', "two"]


async def test_order_within_the_queue(rabbitmq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    bodies = [str(i) for i in range(300)]
    await rabbit_publish(rabbitmq_endpoint, queue, bodies)
    await check_delivered_in_order(rabbitmq_endpoint, queue, tmp_path, bodies)


async def test_order_holds_across_a_failed_batch(rabbitmq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)

    async def publish(bodies: list[str]) -> None:
        await rabbit_publish(rabbitmq_endpoint, queue, list(bodies))

    await check_order_holds_across_a_failure(rabbitmq_endpoint, queue, tmp_path, publish)


async def test_poison_message_is_dead_lettered_by_the_broker(rabbitmq_endpoint: str,
                                                             tmp_path: Path) -> None:
    queue, dlq = unique_name("rmq"), unique_name("rmq-dlq")
    await declare(rabbitmq_endpoint, dlq)
    await declare(rabbitmq_endpoint, queue, **{
        "x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dlq})
    bodies = ["a", "b", "poison", "c", "d"]
    await rabbit_publish(rabbitmq_endpoint, queue, bodies)
    rec = MqRecorder(fail_on=lambda data: data == "poison")

    async def dlq_depth() -> bool:
        return await rabbit_depth(rabbitmq_endpoint, dlq) > 0

    async with function_host(rec) as host:
        mapping = mq_mapping(rabbitmq_endpoint, queue, secret_file(tmp_path), batch_size=1)
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")):
            await wait_for(lambda: len(rec.done()) == 4, 60)
            await wait_for(dlq_depth, 60)  # type: ignore[arg-type]  # mypy cannot solve T
            redelivered = counter(m.mq_messages_redelivered, mapping.uuid)
    assert sorted(rec.done()) == ["a", "b", "c", "d"]  # each delivered once to a success
    attempts = [x for x in rec.seen() if base64.b64decode(x["data"]) == b"poison"]
    assert len(attempts) == 3 and redelivered == 3  # the first delivery and 2 redeliveries
    assert [a["redelivered"] for a in attempts] == [False, True, True]
    assert await rabbit_depth(rabbitmq_endpoint, dlq) == 1
    assert await rabbit_depth(rabbitmq_endpoint, queue) == 0


async def test_filtered_messages_are_acked_at_once(rabbitmq_endpoint: str,
                                                   tmp_path: Path) -> None:
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    await rabbit_publish(rabbitmq_endpoint, queue,
                         ['{"kind":"order","n":1}', '{"kind":"refund"}', "plain text",
                          '{"kind":"order","n":2}'])
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(rabbitmq_endpoint, queue, secret_file(tmp_path),
                             filter_patterns=('{"data": {"kind": ["order"]}}',))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")):
            await wait_for(lambda: len(rec.done()) == 3, 30)
            await wait_for(lambda: counter(m.mq_messages_acked, mapping.uuid) == 4, 10)
            assert counter(m.records_filtered, mapping.uuid) == 1
    # text data under an object pattern: Lambda falls back to the metadata rules (none here)
    assert rec.done() == ['{"kind":"order","n":1}', "plain text", '{"kind":"order","n":2}']
    assert await rabbit_depth(rabbitmq_endpoint, queue) == 0


async def test_bad_credentials_fail_the_mapping_without_a_crash_loop(
        rabbitmq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    await check_bad_credentials(rabbitmq_endpoint, queue, tmp_path, "ACCESS_REFUSED")


async def test_broker_restart_while_consuming_loses_nothing(tmp_path: Path) -> None:
    # outside tmp_path: the broker runs as the rabbitmq user, which must reach its directory
    work = Path(tempfile.mkdtemp(prefix="esm-poller-rmq-restart-"))
    brokers = [start_rabbitmq(log_dir=tmp_path / "logs", workdir=work)]
    ports, endpoint = rabbitmq_ports(brokers[0]), brokers[0].endpoint
    try:
        queue = unique_name("rmq")
        await declare(endpoint, queue)
        await check_restart_loses_nothing(
            endpoint, queue, tmp_path, lambda bodies: rabbit_publish(endpoint, queue, bodies),
            lambda: brokers[-1].stop(30),
            lambda: brokers.append(start_rabbitmq(log_dir=tmp_path / "logs", workdir=work,
                                                  ports=ports)))
        assert await rabbit_depth(endpoint, queue) == 0
    finally:
        brokers[-1].stop(30)
        shutil.rmtree(work, ignore_errors=True)


async def test_messages_published_with_aio_pika_defaults(rabbitmq_endpoint: str,
                                                         tmp_path: Path) -> None:
    """A binary message with no properties set."""
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    connection = await rabbit(rabbitmq_endpoint)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"\xff\x00"), routing_key=queue)
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(rabbitmq_endpoint, queue, secret_file(tmp_path))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")):
            await wait_for(lambda: len(rec.done()) == 1, 30)
    props = rec.seen()[0]["basicProperties"]
    assert props["bodySize"] == 2 and props["contentType"] is None
    assert base64.b64decode(rec.seen()[0]["data"]) == b"\xff\x00"


async def test_missing_queue_and_unreadable_secret_are_named_problems(
        rabbitmq_endpoint: str, tmp_path: Path) -> None:
    missing = mq_mapping(rabbitmq_endpoint, unique_name("rmq-none"), secret_file(tmp_path))
    no_secret = mq_mapping(rabbitmq_endpoint, unique_name("rmq"), tmp_path / "absent.json")
    rec = MqRecorder()
    async with function_host(rec) as host:
        for mapping, kind, text in ((missing, "queue", "NOT_FOUND"),
                                    (no_secret, "authn", "cannot read")):
            async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                             state=tmp_path / "s.db")) as service:
                runner = service.mq_mappings[mapping.uuid]
                problem = functools.partial(lambda r: r.status.state == "Problem", runner)
                await wait_for(problem, 20)
                assert text in runner.status.reason
                assert counter(m.mq_reconnects, mapping.uuid, kind=kind) >= 1
    assert no_secret.mq is not None and "EVENT_SOURCE_AUTHN_ERROR" in runner.status.reason
    assert rec.events == []


async def test_tls_endpoint(rabbitmq_tls_endpoint: tuple[str, str], rabbitmq_endpoint: str,
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """amqps:// connects with TLS and verifies the broker's certificate against the trust
    store (here the test CA, through OpenSSL's SSL_CERT_FILE)."""
    endpoint, ca = rabbitmq_tls_endpoint
    (tmp_path / "ca.pem").write_text(ca)
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    await rabbit_publish(rabbitmq_endpoint, queue, ["secure"])
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(endpoint, queue, secret_file(tmp_path))
        assert mapping.mq is not None and mapping.mq.tls
        untrusted = source_config(mapping, lambda_endpoint=host.endpoint,
                                  state=tmp_path / "s.db")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
        async with running(untrusted) as service:  # the test CA is not trusted: refused
            runner = service.mq_mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 20)
            assert "CERTIFICATE_VERIFY_FAILED" in runner.status.reason
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        async with running(untrusted):
            await wait_for(lambda: rec.done() == ["secure"], 30)


async def test_deleted_queue_is_noticed(rabbitmq_endpoint: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("poller.sources.mq.DEPTH_INTERVAL", 0.2)
    queue = unique_name("rmq")
    await declare(rabbitmq_endpoint, queue)
    await rabbit_publish(rabbitmq_endpoint, queue, ["x", "y", "z"])
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(rabbitmq_endpoint, queue, secret_file(tmp_path))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")) as service:
            runner = service.mq_mappings[mapping.uuid]
            await wait_for(lambda: len(rec.done()) == 3, 30)
            await wait_for(lambda: counter(m.mq_queue_depth, mapping.uuid) == 0, 10)
            connection = await rabbit(rabbitmq_endpoint)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(queue)
            # noticed by the depth reads, then reported by the reconnect's passive declare
            await wait_for(lambda: "NOT_FOUND" in runner.status.reason, 20)
            assert runner.status.state == "Problem"
            assert counter(m.mq_reconnects, mapping.uuid, kind="queue") >= 1
