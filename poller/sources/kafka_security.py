"""Kafka client security from a mapping's SourceAccessConfigurations: SASL/PLAIN (BASIC_AUTH)
and SASL/SCRAM over TLS, mutual TLS (CLIENT_CERTIFICATE_TLS_AUTH) and a private server root CA
(SERVER_ROOT_CA_CERTIFICATE). Each secret is JSON with AWS's keys (``username``/``password``;
``certificate``/``privateKey``/``privateKeyPassword``), read from the file or environment
variable the config's ``secrets`` names for its ARN, or from AWS Secrets Manager."""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from poller.config_model import KafkaAuth, KafkaSource, SecretRef

SASL_MECHANISMS = {
    "BASIC_AUTH": "PLAIN",
    "SASL_SCRAM_256_AUTH": "SCRAM-SHA-256",
    "SASL_SCRAM_512_AUTH": "SCRAM-SHA-512",
}


SecretFetcher = Callable[[str], Awaitable[str]]  # secret ARN -> SecretString
Secrets = dict[str, dict[str, Any]]  # URI -> the secret's JSON


class KafkaAuthError(Exception):
    """A secret is missing or malformed (the message never contains secret values)."""


async def load_secrets(source: KafkaSource, fetch: SecretFetcher | None) -> Secrets:
    """Every secret the source's SourceAccessConfigurations name, read now."""
    out: Secrets = {}
    for auth in source.auth:
        out[auth.uri] = await load_secret(auth, fetch)
    return out


async def load_secret(auth: KafkaAuth, fetch: SecretFetcher | None) -> dict[str, Any]:
    """One SourceAccessConfigurations secret's JSON (from its file, variable or Secrets
    Manager), read now."""
    if auth.secret.kind != "secretsmanager":
        return read_secret(auth.secret, auth.uri)
    if fetch is None:
        raise KafkaAuthError(f"secret {auth.uri}: no Secrets Manager client")
    try:
        text = await fetch(auth.secret.name)
    except KafkaAuthError:
        raise
    except Exception as exc:
        raise KafkaAuthError(f"secret {auth.uri}: GetSecretValue failed: "
                             f"{type(exc).__name__}") from None
    return _parse(text, auth.uri, "Secrets Manager value")


def _parse(text: str, uri: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        raise KafkaAuthError(f"secret {uri}: its {what} is not JSON") from None
    if not isinstance(doc, dict):
        raise KafkaAuthError(f"secret {uri}: expected a JSON object")
    return doc


def read_secret(ref: SecretRef, uri: str) -> dict[str, Any]:
    try:
        if ref.kind == "file":
            text = Path(ref.name).read_text()
        else:
            text = os.environ[ref.name]
    except KeyError:
        raise KafkaAuthError(f"secret {uri}: environment variable {ref.name} is not set") from None
    except OSError as exc:
        raise KafkaAuthError(f"secret {uri}: cannot read {ref.name}: {exc.strerror}") from None
    return _parse(text, uri, f"{ref.kind} {ref.name}")


def _field(doc: dict[str, Any], key: str, auth: KafkaAuth) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise KafkaAuthError(f"secret {auth.uri} ({auth.type}) has no {key!r}")
    return value


def _load_client_certificate(ctx: ssl.SSLContext, doc: dict[str, Any], auth: KafkaAuth) -> None:
    chain = _field(doc, "certificate", auth)
    key = _field(doc, "privateKey", auth)
    password = doc.get("privateKeyPassword") or None
    # the ssl module loads certificates only from files: a private directory, removed at once
    with tempfile.TemporaryDirectory(prefix="esm-poller-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        for path, text in ((cert_path, chain), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        try:
            ctx.load_cert_chain(cert_path, key_path, password)
        except (ssl.SSLError, ValueError) as exc:
            raise KafkaAuthError(f"secret {auth.uri}: Provided certificate or private key is "
                                 f"invalid ({type(exc).__name__})") from None


def client_security(source: KafkaSource, secrets: Secrets) -> dict[str, Any]:
    """aiokafka client keyword arguments for the source's authentication (``secrets`` from
    ``load_secrets``)."""
    if not source.auth:
        return {"security_protocol": "PLAINTEXT"}
    root = next((a for a in source.auth if a.type == "SERVER_ROOT_CA_CERTIFICATE"), None)
    client = next((a for a in source.auth if a.type != "SERVER_ROOT_CA_CERTIFICATE"), None)
    ctx = ssl.create_default_context()
    if root is not None:
        ca = _field(secrets[root.uri], "certificate", root)
        try:
            ctx.load_verify_locations(cadata=ca)
        except (ssl.SSLError, ValueError):
            raise KafkaAuthError(f"secret {root.uri}: the server root CA certificate is "
                                 "invalid") from None
    if client is None:
        return {"security_protocol": "SSL", "ssl_context": ctx}
    doc = secrets[client.uri]
    if client.type == "CLIENT_CERTIFICATE_TLS_AUTH":
        _load_client_certificate(ctx, doc, client)
        return {"security_protocol": "SSL", "ssl_context": ctx}
    return {
        "security_protocol": "SASL_SSL",
        "ssl_context": ctx,
        "sasl_mechanism": SASL_MECHANISMS[client.type],
        "sasl_plain_username": _field(doc, "username", client),
        "sasl_plain_password": _field(doc, "password", client),
    }
