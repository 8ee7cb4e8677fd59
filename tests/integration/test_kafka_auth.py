"""Kafka authentication against the real broker's SASL_SSL and SSL listeners: SASL/PLAIN,
SASL/SCRAM-256/512, mutual TLS, the server root CA, and what a wrong secret does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from poller.config import parse_config
from poller.config_model import KafkaAuth as AuthConfig
from poller.config_model import SecretRef
from tests.helpers import make_boto3_client, unique_name, wait_for
from tests.infra.servers import KafkaAuth
from tests.integration.kafka_harness import (
    KafkaRecorder,
    create_topic,
    kafka_config,
    kafka_function_host,
    kafka_mapping,
    produce,
    wait_committed,
)
from tests.integration.pipeline_harness import running

CA_ENV = "ESM_POLLER_TEST_KAFKA_CA"


def _secret_file(tmp_path: Path, name: str, doc: dict[str, str]) -> SecretRef:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return SecretRef("file", str(path))


@pytest.mark.parametrize("auth_type", ["SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH",
                                       "BASIC_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH"])
async def test_authenticated_listener_delivers(kafka_auth_broker: tuple[str, KafkaAuth],
                                               tmp_path: Path, auth_type: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plain, auth = kafka_auth_broker
    topic = await create_topic(plain)
    await produce(plain, topic, [(0, None, b"secret-1"), (0, None, b"secret-2")])
    monkeypatch.setenv(CA_ENV, json.dumps({"certificate": auth.ca_pem}))
    if auth_type == "CLIENT_CERTIFICATE_TLS_AUTH":
        bootstrap = auth.ssl
        client = _secret_file(tmp_path, "client", {"certificate": auth.client_cert_pem,
                                                   "privateKey": auth.client_key_pem})
    else:
        bootstrap = auth.sasl_ssl
        client = _secret_file(tmp_path, "user", {"username": auth.username,
                                                 "password": auth.password})
    rec = KafkaRecorder()
    mapping = kafka_mapping(bootstrap, topic)
    assert mapping.kafka is not None
    mapping = replace(mapping, kafka=replace(mapping.kafka, auth=(
        AuthConfig(auth_type, "arn:aws:secretsmanager:us-east-1:000000000000:secret:c", client),
        AuthConfig("SERVER_ROOT_CA_CERTIFICATE",
                   "arn:aws:secretsmanager:us-east-1:000000000000:secret:ca",
                   SecretRef("env", CA_ENV)))))
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 2, 30)
            await wait_committed(plain, mapping.uuid, topic, 2)
    assert rec.ok_values() == [b"secret-1", b"secret-2"]
    assert rec.events[0]["bootstrapServers"] == bootstrap


async def test_wrong_password_is_a_problem_state(kafka_auth_broker: tuple[str, KafkaAuth],
                                                 tmp_path: Path) -> None:
    plain, auth = kafka_auth_broker
    topic = await create_topic(plain)
    ca = _secret_file(tmp_path, "ca", {"certificate": auth.ca_pem})
    bad = _secret_file(tmp_path, "bad", {"username": auth.username, "password": "wrong"})
    mapping = kafka_mapping(auth.sasl_ssl, topic)
    assert mapping.kafka is not None
    mapping = replace(mapping, kafka=replace(mapping.kafka, auth=(
        AuthConfig("SASL_SCRAM_512_AUTH", "arn:s:bad", bad),
        AuthConfig("SERVER_ROOT_CA_CERTIFICATE", "arn:s:ca", ca))))
    rec = KafkaRecorder()
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")) as svc:
            runner = svc.kafka_mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 30)
            assert runner.status.reason == "PROBLEM: SASL authentication failed."
            assert "wrong" not in runner.status.reason
            assert svc.readiness()[0] is False
    assert rec.events == []


async def test_unknown_server_certificate_is_a_problem_state(
        kafka_auth_broker: tuple[str, KafkaAuth], tmp_path: Path) -> None:
    plain, auth = kafka_auth_broker
    topic = await create_topic(plain)
    user = _secret_file(tmp_path, "user", {"username": auth.username, "password": auth.password})
    mapping = kafka_mapping(auth.sasl_ssl, topic)
    assert mapping.kafka is not None
    mapping = replace(mapping, kafka=replace(mapping.kafka, auth=(
        AuthConfig("SASL_SCRAM_512_AUTH", "arn:s:user", user),)))
    async with kafka_function_host(KafkaRecorder()) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db")) as svc:
            runner = svc.kafka_mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 30)
            assert runner.status.reason == "PROBLEM: Lambda failed to authenticate server."


async def test_scram_secret_from_secrets_manager(kafka_auth_broker: tuple[str, KafkaAuth],
                                                 moto_endpoint: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    plain, auth = kafka_auth_broker
    sm = make_boto3_client("secretsmanager", moto_endpoint)
    arn = sm.create_secret(Name=unique_name("kafka-user"), SecretString=json.dumps(
        {"username": auth.username, "password": auth.password}))["ARN"]
    monkeypatch.setenv(CA_ENV, json.dumps({"certificate": auth.ca_pem}))
    topic = await create_topic(plain)
    await produce(plain, topic, [(0, None, b"from-sm")])
    mapping = kafka_mapping(auth.sasl_ssl, topic)
    assert mapping.kafka is not None
    mapping = replace(mapping, kafka=replace(mapping.kafka, auth=(
        AuthConfig("SASL_SCRAM_512_AUTH", arn, SecretRef("secretsmanager", arn)),
        AuthConfig("SERVER_ROOT_CA_CERTIFICATE", "arn:s:ca", SecretRef("env", CA_ENV)))))
    rec = KafkaRecorder()
    async with kafka_function_host(rec) as host:
        async with running(kafka_config(mapping, host.endpoint, tmp_path / "s.db",
                                        moto=moto_endpoint)):
            await wait_committed(plain, mapping.uuid, topic, 1)
    assert rec.ok_values() == [b"from-sm"]


def test_config_reads_auth_from_secrets() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-user"
    cfg = parse_config({
        "secrets": {arn: {"env": "KAFKA_USER_SECRET"}},
        "mappings": [{
            "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["h:9096"]}},
            "Topics": ["orders"], "FunctionName": "f", "StartingPosition": "LATEST",
            "SourceAccessConfigurations": [{"Type": "SASL_SCRAM_256_AUTH", "URI": arn}],
        }],
    }, env={})
    kafka = cfg.mappings[0].kafka
    assert kafka is not None
    assert kafka.auth == (AuthConfig("SASL_SCRAM_256_AUTH", arn,
                                     SecretRef("env", "KAFKA_USER_SECRET")),)
    cfg = parse_config({"mappings": [{
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["h:9096"]}},
        "Topics": ["orders"], "FunctionName": "f", "StartingPosition": "LATEST",
        "SourceAccessConfigurations": [{"Type": "SASL_SCRAM_256_AUTH", "URI": arn}],
    }]}, env={})
    kafka = cfg.mappings[0].kafka
    assert kafka is not None
    assert kafka.auth[0].secret == SecretRef("secretsmanager", arn)
