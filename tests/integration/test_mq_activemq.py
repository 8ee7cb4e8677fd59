"""ActiveMQ source end to end: a real ActiveMQ Classic broker (Debian's activemq, the engine
Amazon MQ runs) over STOMP, the real service, the function host over the Lambda Invoke API."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from poller.observability import metrics as m
from poller.sources.activemq import ACTIVEMQ_MAX_REDELIVERIES
from tests.helpers import unique_name, wait_for
from tests.infra.servers import start_activemq
from tests.integration.mq_harness import (
    BROKER_ARN,
    MqRecorder,
    activemq_drain,
    activemq_publish,
    check_bad_credentials,
    check_delivered_in_order,
    check_order_holds_across_a_failure,
    check_restart_loses_nothing,
    mq_mapping,
    secret_file,
)
from tests.integration.pipeline_harness import counter, running
from tests.integration.source_harness import function_host, source_config


async def test_event_shape_and_ack_on_success(activemq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("amq")
    await activemq_publish(activemq_endpoint, queue, ["ABC:AAAA"], **{
        "correlation-id": "myJMSCoID", "testKey": "testValue", "priority": "1",
        "expires": "0"})
    await activemq_publish(activemq_endpoint, queue, [b"\x00\x01bytes"])
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(activemq_endpoint, queue, secret_file(tmp_path))
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")) as service:
            await wait_for(lambda: len(rec.done()) == 2, 30)
            assert service.mq_mappings[mapping.uuid].status.state == "Enabled"
            await wait_for(lambda: counter(m.mq_messages_acked, mapping.uuid) == 2, 10)
    assert await activemq_drain(activemq_endpoint, queue, expect=1, deadline=2) == []
    event = rec.events[0]
    assert list(event) == ["eventSource", "eventSourceArn", "messages"]
    assert event["eventSource"] == "aws:mq" and event["eventSourceArn"] == BROKER_ARN
    [text] = [x for x in rec.seen() if x["data"] == "QUJDOkFBQUE="]
    [binary] = [x for x in rec.seen() if x is not text]
    assert list(text) == ["messageID", "messageType", "deliveryMode", "replyTo", "type",
                          "expiration", "priority", "correlationId", "redelivered",
                          "destination", "data", "timestamp", "brokerInTime", "brokerOutTime",
                          "properties"]
    assert text["messageID"].startswith("ID:")
    assert (text["messageType"], text["deliveryMode"], text["priority"]) == (
        "jms/text-message", 2, 1)
    assert text["correlationId"] == "myJMSCoID" and text["redelivered"] is False
    assert text["destination"] == {"physicalName": queue}
    assert text["data"] == "QUJDOkFBQUE=" and text["properties"] == {"testKey": "testValue"}
    assert text["brokerInTime"] == text["timestamp"] <= text["brokerOutTime"]
    assert binary["messageType"] == "jms/bytes-message"
    assert base64.b64decode(binary["data"]) == b"\x00\x01bytes"


async def test_order_within_the_queue(activemq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("amq")
    bodies = [str(i) for i in range(200)]
    await activemq_publish(activemq_endpoint, queue, list(bodies))
    await check_delivered_in_order(activemq_endpoint, queue, tmp_path, bodies)


async def test_order_holds_across_a_failed_batch(activemq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("amq")

    async def publish(bodies: list[str]) -> None:
        await activemq_publish(activemq_endpoint, queue, list(bodies))

    await check_order_holds_across_a_failure(activemq_endpoint, queue, tmp_path, publish)


async def test_poison_message_goes_to_the_dlq_after_five_redeliveries(
        activemq_endpoint: str, tmp_path: Path) -> None:
    queue = unique_name("amq")
    await activemq_publish(activemq_endpoint, queue, ["a", "b", "poison", "c", "d"])
    rec = MqRecorder(fail_on=lambda data: data == "poison")
    async with function_host(rec) as host:
        mapping = mq_mapping(activemq_endpoint, queue, secret_file(tmp_path), batch_size=1)
        async with running(source_config(mapping, lambda_endpoint=host.endpoint,
                                         state=tmp_path / "s.db")):
            await wait_for(lambda: len(rec.done()) == 4, 60)
            await wait_for(lambda: counter(m.mq_messages_dead_lettered, mapping.uuid) == 1, 60)
    assert sorted(rec.done()) == ["a", "b", "c", "d"]  # each delivered once to a success
    attempts = [x for x in rec.seen() if base64.b64decode(x["data"]) == b"poison"]
    assert len(attempts) == 1 + ACTIVEMQ_MAX_REDELIVERIES
    assert [a["redelivered"] for a in attempts] == [False] + [True] * ACTIVEMQ_MAX_REDELIVERIES
    assert await activemq_drain(activemq_endpoint, "ActiveMQ.DLQ", expect=1) == [b"poison"]
    assert await activemq_drain(activemq_endpoint, queue, expect=1, deadline=2) == []


async def test_bad_credentials_fail_the_mapping_without_a_crash_loop(
        activemq_endpoint: str, tmp_path: Path) -> None:
    await check_bad_credentials(activemq_endpoint, unique_name("amq"), tmp_path,
                                "password is invalid")


async def test_broker_restart_while_consuming_loses_nothing(tmp_path: Path) -> None:
    brokers = [start_activemq(log_dir=tmp_path / "logs", workdir=tmp_path / "broker")]
    port, endpoint = brokers[0].port, brokers[0].endpoint
    try:
        queue = unique_name("amq")

        async def publish(bodies: list[str]) -> None:
            await activemq_publish(endpoint, queue, list(bodies))

        await check_restart_loses_nothing(
            endpoint, queue, tmp_path, publish, lambda: brokers[-1].stop(30),
            lambda: brokers.append(start_activemq(log_dir=tmp_path / "logs",
                                                  workdir=tmp_path / "broker", port=port)))
        assert await activemq_drain(endpoint, queue, expect=1, deadline=2) == []
    finally:
        brokers[-1].stop(30)


async def test_tls_endpoint(activemq_tls_endpoint: tuple[str, str], activemq_endpoint: str,
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stomp+ssl:// connects with TLS and verifies the broker's certificate and host name
    against the trust store (here the test CA, through OpenSSL's SSL_CERT_FILE)."""
    endpoint, ca = activemq_tls_endpoint
    (tmp_path / "ca.pem").write_text(ca)
    queue = unique_name("amq")
    await activemq_publish(activemq_endpoint, queue, ["secure"])
    rec = MqRecorder()
    async with function_host(rec) as host:
        mapping = mq_mapping(endpoint, queue, secret_file(tmp_path))
        assert mapping.mq is not None and mapping.mq.tls
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
        async with running(config) as service:  # the test CA is not trusted: refused
            runner = service.mq_mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 20)
            assert counter(m.mq_reconnects, mapping.uuid, kind="connection") >= 1
        assert rec.events == []
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        async with running(config):
            await wait_for(lambda: rec.done() == ["secure"], 30)
