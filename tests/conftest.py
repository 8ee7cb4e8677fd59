"""Session-wide test setup: fake AWS credentials, real servers on demand, the integration marker."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests only ever talk to local servers: never sign with a developer's real credentials.
os.environ["AWS_ACCESS_KEY_ID"] = "test"
os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from tests.helpers import KinesisEndpoint
from tests.infra.servers import (
    KafkaAuth,
    RunningServer,
    activemq_tls,
    kafka_auth,
    rabbitmq_tls,
    start,
)

INTEGRATION_DIR = Path(__file__).parent / "integration"
KINESIS_SERVERS = ["kinesalite", "kinesis-local"]


class ServerPool:
    """Starts each named server the first time a test asks for it; stops them all at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: dict[str, RunningServer] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> RunningServer:
        with self._lock:
            server = self.servers.get(name)
            if server is None or server.process.poll() is not None:
                server = start(name, log_dir=self.log_dir)
                self.servers[name] = server
            return server

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


_pool: ServerPool | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def test_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The pool of real servers; ``test_servers.get("moto")`` starts moto once per session."""
    global _pool
    pool = ServerPool(tmp_path_factory.mktemp("server-logs"))
    _pool = pool
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session")
def kinesalite_endpoint(test_servers: ServerPool) -> str:
    return test_servers.get("kinesalite").endpoint


@pytest.fixture(scope="session")
def kinesis_local_endpoint(test_servers: ServerPool) -> str:
    return test_servers.get("kinesis-local").endpoint


@pytest.fixture(scope="session")
def dynamodb_local_endpoint(test_servers: ServerPool) -> str:
    return test_servers.get("dynamodb-local").endpoint


@pytest.fixture(scope="session")
def moto_endpoint(test_servers: ServerPool) -> str:
    return test_servers.get("moto").endpoint


@pytest.fixture(scope="session")
def kafka_bootstrap(test_servers: ServerPool) -> str:
    """``host:port`` of the session's Apache Kafka broker (started on first use)."""
    return test_servers.get("kafka").endpoint


@pytest.fixture(scope="session")
def kafka_auth_broker(test_servers: ServerPool) -> tuple[str, KafkaAuth]:
    """(plaintext host:port, the authenticated listeners) of a second broker for auth tests."""
    server = test_servers.get("kafka-auth")
    return server.endpoint, kafka_auth(server)


@pytest.fixture(scope="session")
def rabbitmq_endpoint(test_servers: ServerPool) -> str:
    """``amqp://host:port`` of the session's RabbitMQ (user ``servers.MQ_USER``)."""
    return test_servers.get("rabbitmq").endpoint


@pytest.fixture(scope="session")
def rabbitmq_tls_endpoint(test_servers: ServerPool) -> tuple[str, str]:
    """(``amqps://host:port``, the CA's PEM) of the session RabbitMQ's TLS listener."""
    return rabbitmq_tls(test_servers.get("rabbitmq"))


@pytest.fixture(scope="session")
def activemq_endpoint(test_servers: ServerPool) -> str:
    """``stomp://host:port`` of the session's ActiveMQ Classic (user ``servers.MQ_USER``)."""
    return test_servers.get("activemq").endpoint


@pytest.fixture(scope="session")
def activemq_tls_endpoint(test_servers: ServerPool) -> tuple[str, str]:
    """(``stomp+ssl://host:port``, the CA's PEM) of the session ActiveMQ's TLS connector."""
    return activemq_tls(test_servers.get("activemq"))


@pytest.fixture(scope="session", params=KINESIS_SERVERS, ids=KINESIS_SERVERS)
def kinesis_endpoint(request: pytest.FixtureRequest, test_servers: ServerPool) -> KinesisEndpoint:
    """Runs the test once against each Kinesis server."""
    name: str = request.param
    return KinesisEndpoint(name, test_servers.get(name).endpoint)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pool is None or not _pool.servers:
        return
    terminalreporter.write_sep("-", "test servers")
    for server in _pool.servers.values():
        terminalreporter.write_line(
            f"{server.name}: {server.endpoint}, up in {server.startup_seconds:.2f} s, "
            f"log {server.log_path}"
        )
