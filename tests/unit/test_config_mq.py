"""Amazon MQ mappings (RabbitMQ and ActiveMQ) in the config: AWS's names, defaults, ranges."""

from __future__ import annotations

from typing import Any

import pytest

from poller.config import MISSING, summary
from poller.config_model import Mapping
from tests.unit.test_config import DROP, config, errors, issue, parse

BROKER = "arn:aws:mq:us-west-2:111122223333:broker:pizzaBroker:b-9bcfa592-423a-4942-879d-eb2"
SECRET = "arn:aws:secretsmanager:us-west-2:111122223333:secret:mq-user-AbCdEf"
RABBIT = {"brokers": {BROKER: "amqps://b-1.example:5671"}}
ACTIVE = {"brokers": {BROKER: ["stomp+ssl://b-1.example:61614", "stomp+ssl://b-2.example:61614"]}}


def mq(**fields: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "EventSourceArn": BROKER,
        "Queues": ["pizzaQueue"],
        "FunctionName": "pizza-handler",
        "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
    }
    m.update(fields)
    return {k: v for k, v in m.items() if v is not DROP}


def only(m: dict[str, Any], **top: Any) -> Mapping:
    [mapping] = parse(config(m, **top)).mappings
    return mapping


def test_rabbitmq_defaults() -> None:
    m = only(mq(), mq=RABBIT)
    assert m.mq is not None and m.source == "mq"
    assert (m.mq.engine, m.mq.queue, m.mq.virtual_host, m.mq.tls) == (
        "rabbitmq", "pizzaQueue", "/", True)
    assert m.mq.auth.type == "BASIC_AUTH" and m.mq.auth.secret.kind == "secretsmanager"
    assert (m.batch_size, m.maximum_batching_window_in_seconds) == (100, 0.5)
    assert m.region == "us-west-2" and m.enabled
    assert "queue pizzaQueue vhost /" in summary(parse(config(mq(), mq=RABBIT)))


def test_activemq_endpoints_secret_from_file_and_virtual_host_rabbit_only(tmp_path: Any) -> None:
    m = only(mq(BatchSize=10000, MaximumBatchingWindowInSeconds=0), mq=ACTIVE,
             secrets={SECRET: {"file": "/run/secrets/mq.json"}})
    assert m.mq is not None and m.mq.engine == "activemq" and len(m.mq.endpoints) == 2
    assert m.mq.auth.secret.kind == "file" and m.mq.auth.secret.name == "/run/secrets/mq.json"
    assert (m.batch_size, m.maximum_batching_window_in_seconds) == (10000, 0)
    vhost = [{"Type": "BASIC_AUTH", "URI": SECRET}, {"Type": "VIRTUAL_HOST", "URI": "sales"}]
    r = only(mq(SourceAccessConfigurations=vhost), mq={"brokers": {BROKER: "amqp://h:5672"}})
    assert r.mq is not None and r.mq.virtual_host == "sales" and not r.mq.tls
    issue(config(mq(SourceAccessConfigurations=vhost), mq=ACTIVE),
          "mappings[0].SourceAccessConfigurations[1].Type", "VIRTUAL_HOST", "RabbitMQ")


def test_mq_errors_are_listed_together() -> None:
    problems = errors(config(mq(
        Queues=["a", "b"], BatchSize=10001, MaximumBatchingWindowInSeconds=301,
        SourceAccessConfigurations=[{"Type": "VIRTUAL_HOST", "URI": "v"}],
        StartingPosition="LATEST", DestinationConfig={}, MaximumRetryAttempts=2,
        BisectBatchOnFunctionError=True, FunctionResponseTypes=["ReportBatchItemFailures"],
        ScalingConfig={}, ProvisionedPollerConfig={}), mq=RABBIT))
    paths = {e.path for e in problems}
    assert {f"mappings[0].{k}" for k in (
        "Queues", "BatchSize", "MaximumBatchingWindowInSeconds", "SourceAccessConfigurations",
        "StartingPosition", "DestinationConfig", "MaximumRetryAttempts",
        "BisectBatchOnFunctionError", "FunctionResponseTypes", "ScalingConfig",
        "ProvisionedPollerConfig")} <= paths
    assert any("Amazon MQ" in e.message for e in problems
               if e.path == "mappings[0].StartingPosition")


@pytest.mark.parametrize(("fields", "path", "value", "text"), [
    ({"Queues": DROP}, "Queues", MISSING, "exactly 1 queue"),
    ({"Queues": []}, "Queues", [], "exactly 1 queue"),
    ({"SourceAccessConfigurations": DROP}, "SourceAccessConfigurations", MISSING, "BASIC_AUTH"),
    ({"SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": "plain"}]},
     "SourceAccessConfigurations[0].URI", "plain", "secrets"),
    ({"SourceAccessConfigurations": [{"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET}]},
     "SourceAccessConfigurations[0].Type", "SASL_SCRAM_512_AUTH", "BASIC_AUTH, VIRTUAL_HOST"),
    ({"EventSourceArn": "arn:aws:mq:us-west-2:111122223333:broker:x"}, "EventSourceArn",
     "arn:aws:mq:us-west-2:111122223333:broker:x", "broker:<name>:<broker id>"),
])
def test_mq_field_errors(fields: dict[str, Any], path: str, value: object, text: str) -> None:
    issue(config(mq(**fields), mq=RABBIT), f"mappings[0].{path}", value, text)


def test_broker_endpoints_come_from_the_mq_section() -> None:
    issue(config(mq()), "mappings[0].EventSourceArn", BROKER, "mq.brokers")
    issue(config(mq(), mq={"brokers": {BROKER: "http://h:1"}}), f"mq.brokers.{BROKER}",
          "http://h:1", "amqps://host:port")
    issue(config(mq(), mq={"brokers": {"arn:aws:mq:us-west-2:111122223333:cluster:x": "amqp://h:1"}}),
          "mq.brokers.arn:aws:mq:us-west-2:111122223333:cluster:x", MISSING, "broker ARNs")
    issue(config(mq(), mq={"brokers": {BROKER: ["amqp://h:1", "stomp://h:2"]}}),
          f"mq.brokers.{BROKER}", ["amqp://h:1", "stomp://h:2"], "one engine")


def test_example_file_is_valid() -> None:
    from pathlib import Path

    from poller.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "mq.yaml", env={})
    rabbit, active = cfg.mappings
    assert rabbit.mq is not None and active.mq is not None
    assert (rabbit.mq.engine, rabbit.mq.queue, len(rabbit.filter_patterns)) == (
        "rabbitmq", "pizzaQueue", 1)
    assert (active.mq.engine, active.batch_size, active.maximum_batching_window_in_seconds) == (
        "activemq", 10, 1)
    assert rabbit.mq.auth.secret.kind == "env"
