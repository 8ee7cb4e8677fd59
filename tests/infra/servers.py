"""Real servers for tests and demos, each started as a subprocess on a free loopback port.

    server = start("kinesalite")          # or "kinesis-local", "moto", "kafka"
    ... use server.endpoint ...
    server.stop()

From a shell: ``python -m tests.infra.servers start kinesalite [moto ...]`` prints the endpoints
and keeps the servers running until Ctrl-C.

The npm servers come from ``tests/infra/install.sh`` (``make infra``), the Kafka broker's jars from
``tests/infra/install-kafka.sh`` (Maven, also ``make infra``); moto from ``.[test]``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "SERVERS",
    "KafkaAuth",
    "RunningServer",
    "ServerStartError",
    "free_port",
    "kafka_auth",
    "start",
    "start_activemq",
    "start_dynamodb_local",
    "start_kafka",
    "start_kinesalite",
    "start_kinesis_local",
    "start_moto",
    "start_rabbitmq",
]

INFRA_DIR = Path(__file__).resolve().parent
NODE_MODULES = INFRA_DIR / "node_modules"
KAFKA_LIB = INFRA_DIR / "kafka" / "lib"
LOOPBACK_SHIM = INFRA_DIR / "loopback.cjs"
CLOCK_SHIM = INFRA_DIR / "clock.cjs"
HOST = "127.0.0.1"
DEFAULT_START_TIMEOUT = 60.0
SHARD_LIMIT = 2000

_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A server did not answer before its deadline, or exited while starting."""


@dataclass
class RunningServer:
    name: str
    endpoint: str
    log_path: Path
    process: subprocess.Popen[bytes]
    startup_seconds: float
    _log_file: IO[bytes] | None = field(repr=False, default=None)
    stop_signal: int = signal.SIGTERM
    workdir: Path | None = None  # where a server keeps its state (kafka)
    remove_on_stop: Path | None = None  # a temporary directory of its own

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def stop(self, timeout: float = 5.0) -> None:
        """Signal the server to stop; kill it if it has not exited within ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
        if self.remove_on_stop is not None:
            shutil.rmtree(self.remove_on_stop, ignore_errors=True)
        with _running_lock:
            _running.discard(self)

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode("utf-8", "replace")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


_running: set[RunningServer] = set()
_running_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _die_with_parent() -> None:
    """Runs in the child before exec: the server gets SIGTERM if the process that started it dies.

    Linux ties this to the starting *thread*; start servers from a thread that outlives them.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _probe_http(url: str, data: bytes | None, headers: dict[str, str]) -> bool:
    """True once the server sends any HTTP response (an error status still means it is up)."""
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            response.read()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def _kinesis_probe(endpoint: str) -> bool:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Kinesis_20131202.ListStreams",
    }
    return _probe_http(endpoint + "/", b"{}", headers)


def _moto_probe(endpoint: str) -> bool:
    return _probe_http(endpoint + "/moto-api/data.json", None, {})


def _launch(
    name: str,
    argv: Sequence[str],
    port: int,
    probe: Callable[[str], bool],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    stop_signal: int = signal.SIGTERM,
) -> RunningServer:
    log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.gettempdir())
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    endpoint = f"http://{HOST}:{port}"
    log_file = open(log_path, "wb")
    started = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    server = RunningServer(name, endpoint, log_path, process, 0.0, log_file, stop_signal)
    with _running_lock:
        _running.add(server)
    deadline = started + timeout
    while True:
        if process.poll() is not None:
            server.stop()
            raise ServerStartError(
                f"{name} exited with code {process.returncode} while starting "
                f"(log {log_path}):\n{server.log_tail()}"
            )
        if probe(endpoint):
            server.startup_seconds = time.monotonic() - started
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(
                f"{name} did not answer on {endpoint} within {timeout:.0f} s "
                f"(log {log_path}):\n{server.log_tail()}"
            )
        time.sleep(0.05)


def _with_port_retries(start_once: Callable[[], RunningServer]) -> RunningServer:
    """Another process may take the chosen port before the server binds it: pick again."""
    attempts = 3
    for attempt in range(attempts):
        try:
            return start_once()
        except ServerStartError as exc:
            text = str(exc)
            if attempt == attempts - 1 or ("EADDRINUSE" not in text and "in use" not in text):
                raise
    raise AssertionError("unreachable")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ServerStartError("node is not on PATH; the Kinesis test servers need Node.js")
    return node


def _npm_package(name: str, entry: str) -> Path:
    path = NODE_MODULES / name / entry
    if not path.is_file():
        raise ServerStartError(f"{path} is missing: run `make infra` (tests/infra/install.sh)")
    return path


def start_kinesalite(
    log_dir: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    clock_file: Path | None = None,
) -> RunningServer:
    """kinesalite, in memory, with no CREATING/DELETING/UPDATING delay and a high shard limit.

    With ``clock_file``, the server's clock runs ahead (or behind) by the number of
    milliseconds written in that file, read again as the test changes it (tests/infra/clock.cjs).
    """
    cli = _npm_package("kinesalite", "cli.js")
    clock = ["--require", str(CLOCK_SHIM)] if clock_file is not None else []
    env = {"FAKE_CLOCK_FILE": str(clock_file)} if clock_file is not None else None

    def once() -> RunningServer:
        port = free_port()
        argv = [
            _node(), "--require", str(LOOPBACK_SHIM), *clock, str(cli),
            "--port", str(port),
            "--createStreamMs", "0", "--deleteStreamMs", "0", "--updateStreamMs", "0",
            "--shardLimit", str(SHARD_LIMIT),
        ]  # fmt: skip
        return _launch("kinesalite", argv, port, _kinesis_probe, env=env, log_dir=log_dir,
                       timeout=timeout)

    return _with_port_retries(once)


def start_kinesis_local(
    log_dir: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    clock_file: Path | None = None,
) -> RunningServer:
    """kinesis-local (kinesis-mock), plain HTTP on the endpoint's port, nothing persisted.

    ``clock_file`` moves the server's clock as for :func:`start_kinesalite`."""
    main_js = _npm_package("kinesis-local", "main.js")
    clock = ["--require", str(CLOCK_SHIM)] if clock_file is not None else []

    def once() -> RunningServer:
        plain_port, tls_port = _free_ports(2)
        env = {
            "KINESIS_MOCK_PLAIN_PORT": str(plain_port),
            "KINESIS_MOCK_TLS_PORT": str(tls_port),
            "CREATE_STREAM_DURATION": "0ms",
            "DELETE_STREAM_DURATION": "0ms",
            "UPDATE_SHARD_COUNT_DURATION": "0ms",
            "UPDATE_STREAM_MODE_DURATION": "0ms",
            "SPLIT_SHARD_DURATION": "0ms",
            "MERGE_SHARDS_DURATION": "0ms",
            "REGISTER_STREAM_CONSUMER_DURATION": "0ms",
            "DEREGISTER_STREAM_CONSUMER_DURATION": "0ms",
            "START_STREAM_ENCRYPTION_DURATION": "0ms",
            "STOP_STREAM_ENCRYPTION_DURATION": "0ms",
            "SHARD_LIMIT": str(SHARD_LIMIT),
            "ON_DEMAND_STREAM_COUNT_LIMIT": "100",
            "SHOULD_PERSIST_DATA": "false",
            "LOAD_DATA_IF_EXISTS": "false",
            "AWS_REGION": "us-east-1",
        }
        if clock_file is not None:
            env["FAKE_CLOCK_FILE"] = str(clock_file)
        argv = [_node(), "--require", str(LOOPBACK_SHIM), *clock, str(main_js)]
        # It reads its TLS certificate (server.json) from the working directory.
        return _launch(
            "kinesis-local",
            argv,
            plain_port,
            _kinesis_probe,
            cwd=main_js.parent,
            env=env,
            log_dir=log_dir,
            timeout=timeout,
            # Its graceful shutdown waits for idle keep-alive connections to close; it holds
            # nothing worth flushing.
            stop_signal=signal.SIGKILL,
        )

    return _with_port_retries(once)


def start_moto(
    log_dir: Path | None = None, timeout: float = DEFAULT_START_TIMEOUT
) -> RunningServer:
    """moto server: SQS, SNS, S3, Kinesis, DynamoDB and more in one process."""

    def once() -> RunningServer:
        port = free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        return _launch("moto", argv, port, _moto_probe, log_dir=log_dir, timeout=timeout)

    return _with_port_retries(once)


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServerStartError("java is not on PATH; the Kafka test broker needs Java 17+")
    return java


_KAFKA_JVM = [
    "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
]  # fmt: skip

_KAFKA_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
log.flush.interval.messages=1000000
"""


@dataclass(frozen=True)
class KafkaAuth:
    """The authenticated listeners of a broker started with ``start_kafka(auth=True)``."""

    sasl_ssl: str  # host:port, SASL over TLS: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    ssl: str  # host:port, TLS with a required client certificate
    username: str
    password: str
    ca_pem: str  # the test CA that signed the broker's and the client's certificates
    client_cert_pem: str
    client_key_pem: str  # PKCS#8, unencrypted


KAFKA_USER = "poller"
KAFKA_PASSWORD = "poller-secret"


def _test_pki() -> tuple[str, str, str, str, str]:
    """(ca, server cert, server key, client cert, client key) PEMs, made now for 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
              signer: ec.EllipticCurvePrivateKey, ca: bool,
              san: list[x509.GeneralName] | None = None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("esm-poller test CA", ca_key, name("esm-poller test CA"), ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue("127.0.0.1", server_key, ca.subject, ca_key, False,
                   [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = issue("esm-poller", client_key, ca.subject, ca_key, False)
    return pem(ca), pem(server), key_pem(server_key), pem(client), key_pem(client_key)


_JAAS = "org.apache.kafka.common.security"
_KAFKA_AUTH_PROPERTIES = "\n".join([
    "listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller},"
    "SASL_SSL://{host}:{sasl},SSL://{host}:{ssl}",
    "advertised.listeners=PLAINTEXT://{host}:{port},SASL_SSL://{host}:{sasl},SSL://{host}:{ssl}",
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,"
    "SSL:SSL",
    "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    f"listener.name.sasl_ssl.plain.sasl.jaas.config={_JAAS}.plain.PlainLoginModule required "
    'user_{user}="{password}";',
    f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={_JAAS}.scram.ScramLoginModule "
    "required;",
    f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={_JAAS}.scram.ScramLoginModule "
    "required;",
    "listener.name.ssl.ssl.client.auth=required",
    "ssl.keystore.type=PEM",
    "ssl.keystore.location={keystore}",
    "ssl.truststore.type=PEM",
    "ssl.truststore.location={truststore}",
    "ssl.endpoint.identification.algorithm=",
    "",
])


def start_kafka(
    log_dir: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    *,
    workdir: Path | None = None,
    ports: tuple[int, int] | None = None,
    auth: bool = False,
) -> RunningServer:
    """Apache Kafka 4.x, one combined KRaft broker+controller; ``endpoint`` is ``host:port``.

    Its storage lives in ``workdir`` (a new temporary directory unless given): start it again
    with the same ``workdir`` and ``ports`` (``(broker, controller)``) to restart the same
    broker with its data. With ``auth``, two more listeners (SASL over TLS with user
    ``KAFKA_USER``, and TLS with client certificates) are described by ``kafka_auth(server)``.
    """
    jars = sorted(KAFKA_LIB.glob("*.jar")) if KAFKA_LIB.is_dir() else []
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise ServerStartError(f"{KAFKA_LIB} has no Kafka jars: run `make infra` "
                               "(tests/infra/install-kafka.sh)")
    classpath = os.pathsep.join(str(j) for j in jars)
    work = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="esm-poller-kafka-"))
    work.mkdir(parents=True, exist_ok=True)
    log_dir = Path(log_dir) if log_dir is not None else work

    def once() -> RunningServer:
        port, controller = ports if ports is not None else _free_ports(2)
        data = work / "data"
        props = work / "server.properties"
        text = _KAFKA_PROPERTIES.format(host=HOST, port=port, controller=controller, data=data)
        scram: list[str] = []
        if auth:
            sasl, ssl = _free_ports(2)
            ca, cert, key, client_cert, client_key = _test_pki()
            (work / "ca.pem").write_text(ca)
            (work / "server.pem").write_text(key + cert + ca)
            (work / "client.pem").write_text(client_cert)
            (work / "client-key.pem").write_text(client_key)
            (work / "auth-ports").write_text(f"{sasl} {ssl}")
            text = "\n".join(line for line in text.splitlines()
                             if not line.startswith(("listeners=", "advertised.listeners=",
                                                     "listener.security.protocol.map=")))
            text += "\n" + _KAFKA_AUTH_PROPERTIES.format(
                host=HOST, port=port, controller=controller, sasl=sasl, ssl=ssl,
                user=KAFKA_USER, password=KAFKA_PASSWORD, keystore=work / "server.pem",
                truststore=work / "ca.pem")
            scram = [arg for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512") for arg in (
                "--add-scram", f"{mech}=[name={KAFKA_USER},password={KAFKA_PASSWORD}]")]
        props.write_text(text)
        java = _java()
        if not (data / "meta.properties").is_file():
            fmt = subprocess.run(
                [java, *_KAFKA_JVM, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "--ignore-formatted", "-t", "ZXNtLXBvbGxlci10ZXN0cw", "-c", str(props),
                 *scram],
                capture_output=True, timeout=timeout, check=False)
            if fmt.returncode != 0:
                raise ServerStartError("formatting the Kafka storage failed: "
                                       + (fmt.stdout + fmt.stderr).decode("utf-8", "replace"))
        log_path = log_dir / f"kafka-{port}.log"

        def ready(_endpoint: str) -> bool:
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    pass
            except OSError:
                return False
            try:
                return b"Kafka Server started" in log_path.read_bytes()
            except OSError:
                return False

        argv = [java, *_KAFKA_JVM, "-cp", classpath, "kafka.Kafka", str(props)]
        server = _launch("kafka", argv, port, ready, log_dir=log_dir, timeout=timeout)
        server.endpoint = f"{HOST}:{port}"
        server.workdir = work
        if workdir is None and log_dir != work:
            server.remove_on_stop = work
        return server

    if ports is not None:
        return once()
    return _with_port_retries(once)


def kafka_auth(server: RunningServer) -> KafkaAuth:
    """The authenticated listeners of a broker started with ``start_kafka(auth=True)``."""
    work = server.workdir
    if work is None or not (work / "auth-ports").is_file():
        raise ValueError(f"{server.name} was not started with auth=True")
    sasl, ssl = (work / "auth-ports").read_text().split()
    return KafkaAuth(f"{HOST}:{sasl}", f"{HOST}:{ssl}", KAFKA_USER, KAFKA_PASSWORD,
                     (work / "ca.pem").read_text(), (work / "client.pem").read_text(),
                     (work / "client-key.pem").read_text())


def start_kafka_auth(log_dir: Path | None = None,
                     timeout: float = DEFAULT_START_TIMEOUT) -> RunningServer:
    """A Kafka broker with SASL_SSL and SSL (client certificate) listeners: ``kafka_auth``."""
    return start_kafka(log_dir, timeout, auth=True)


DYNAMODB_DIR = INFRA_DIR / "dynamodb"


def _dynamodb_probe(endpoint: str) -> bool:
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/dynamodb/"
                         "aws4_request, SignedHeaders=host, Signature=0",
    }
    return _probe_http(endpoint + "/", b"{}", headers)


def start_dynamodb_local(
    log_dir: Path | None = None, timeout: float = DEFAULT_START_TIMEOUT
) -> RunningServer:
    """DynamoDB Local (AWS's own, with Streams), in memory, listening on loopback only.

    It has no listen-address option: an LD_PRELOAD shim (dynamodb/loopback_bind.c) turns its
    wildcard bind into 127.0.0.1. A small heap keeps the JVM light."""
    lib = DYNAMODB_DIR / "lib"
    shim = lib / "loopback_bind.so"
    if not shim.is_file() or not any(lib.glob("DynamoDBLocal-*.jar")):
        raise ServerStartError(f"{lib} is incomplete: run `make infra` (tests/infra/install.sh)")
    java = shutil.which("java")
    if java is None:
        raise ServerStartError("java is not on PATH; DynamoDB Local needs a JRE")

    def once() -> RunningServer:
        port = free_port()
        argv = [
            java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Xss512k", "-Djava.net.preferIPv4Stack=true", f"-Djava.library.path={lib}",
            "-cp", f"{lib}/*", "software.amazon.dynamodb.services.local.main.ServerRunner",
            "-inMemory", "-port", str(port), "-disableTelemetry",
        ]
        return _launch("dynamodb-local", argv, port, _dynamodb_probe, cwd=DYNAMODB_DIR,
                       env={"LD_PRELOAD": str(shim)}, log_dir=log_dir, timeout=timeout)

    return _with_port_retries(once)


# --- Amazon MQ stand-ins (Debian's rabbitmq-server and activemq, tests/infra/install-mq.sh) -----

MQ_USER = "esm"
MQ_PASSWORD = "esm-test-secret"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
ACTIVEMQ_HOME = Path("/usr/share/activemq")

_RABBITMQ_CONF = """\
listeners.tcp.default = {host}:{port}
loopback_users = none
default_user = {user}
default_pass = {password}
log.console = true
log.file = false
log.console.level = warning
listeners.ssl.default = {host}:{tls_port}
ssl_options.cacertfile = {work}/ca.pem
ssl_options.certfile = {work}/server.pem
ssl_options.keyfile = {work}/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
"""

_ACTIVEMQ_XML = """\
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
  http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core
  http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="esm" useJmx="false"
          advisorySupport="false" dataDirectory="{data}">
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
          <authenticationUser username="{user}" password="{password}" groups="admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <sslContext>
      <sslContext keyStore="{keystore}" keyStorePassword="{keystore_password}"
                  keyStoreType="PKCS12"/>
    </sslContext>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://{host}:{port}"/>
      <transportConnector name="stomp+ssl" uri="stomp+ssl://{host}:{tls_port}"/>
    </transportConnectors>
  </broker>
</beans>
"""


def _tcp_probe(port: int) -> Callable[[str], bool]:
    def probe(_endpoint: str) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            return False

    return probe


def _with_workdir(server: RunningServer, endpoint: str, work: Path, temporary: bool,
                  log_dir: Path) -> RunningServer:
    """The server's endpoint and state directory (removed on stop when it is a temporary one
    that holds no logs)."""
    server.endpoint = endpoint
    server.workdir = work
    if temporary and log_dir != work:
        server.remove_on_stop = work
    return server


def start_rabbitmq(
    log_dir: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    *,
    workdir: Path | None = None,
    ports: tuple[int, int, int] | None = None,
) -> RunningServer:
    """RabbitMQ (Debian's rabbitmq-server) as a plain process with user ``MQ_USER``;
    ``endpoint`` is ``amqp://host:port``, ``rabbitmq_tls(server)`` its TLS listener. Start it
    again with the same ``workdir`` and ``ports`` (``rabbitmq_ports(server)``) to restart the
    same node with its queues. As root it runs as the ``rabbitmq`` user, which must own its
    directories."""
    if not RABBITMQ_SERVER.is_file():
        raise ServerStartError("rabbitmq-server is not installed: run `make infra` "
                               "(tests/infra/install-mq.sh)")
    work = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="esm-poller-rmq-"))
    work.mkdir(parents=True, exist_ok=True)
    log_dir = Path(log_dir) if log_dir is not None else work

    def once() -> RunningServer:
        port, dist, tls_port = ports if ports is not None else _free_ports(3)
        if not (work / "ca.pem").is_file():
            ca, cert, key, _client, _client_key = _test_pki()
            for name, text in (("ca.pem", ca), ("server.pem", cert), ("server-key.pem", key)):
                (work / name).write_text(text)
        (work / "rabbitmq.conf").write_text(_RABBITMQ_CONF.format(
            host=HOST, port=port, user=MQ_USER, password=MQ_PASSWORD, tls_port=tls_port,
            work=work))
        (work / "enabled_plugins").write_text("[].\n")
        (work / "ports").write_text(f"{port} {dist} {tls_port}")
        env = {
            "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_NODENAME": f"esm{port}@localhost",
            "RABBITMQ_MNESIA_BASE": str(work / "mnesia"), "RABBITMQ_LOG_BASE": str(work),
            "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(work / "rabbitmq.pid"), "HOME": str(work),
            # Erlang distribution and the port mapper (epmd) on loopback only as well
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": HOST,
        }
        argv = [str(RABBITMQ_SERVER)]
        if os.geteuid() == 0:
            shutil.chown(work, "rabbitmq", "rabbitmq")
            for path in work.rglob("*"):
                shutil.chown(path, "rabbitmq", "rabbitmq")
            argv = ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups",
                    *argv]
        server = _launch("rabbitmq", argv, port, _tcp_probe(port), cwd=work, env=env,
                         log_dir=log_dir, timeout=timeout)
        return _with_workdir(server, f"amqp://{HOST}:{port}", work, workdir is None, log_dir)

    if ports is not None:
        return once()
    return _with_port_retries(once)


def rabbitmq_ports(server: RunningServer) -> tuple[int, int, int]:
    """(amqp, distribution, amqps) ports of a RabbitMQ from ``start_rabbitmq``: restart it with
    them."""
    assert server.workdir is not None
    amqp, dist, tls = (server.workdir / "ports").read_text().split()
    return int(amqp), int(dist), int(tls)


def rabbitmq_tls(server: RunningServer) -> tuple[str, str]:
    """(``amqps://127.0.0.1:port``, the test CA's PEM) of a RabbitMQ's TLS listener."""
    assert server.workdir is not None
    return (f"amqps://{HOST}:{rabbitmq_ports(server)[2]}",
            (server.workdir / "ca.pem").read_text())


_KEYSTORE_PASSWORD = "esm-test-keystore"


def _write_keystore(conf: Path) -> None:
    """broker.p12 (the test PKI's server key and certificate, for Java) and ca.pem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    ca, cert, key, _client, _client_key = _test_pki()
    (conf / "ca.pem").write_text(ca)
    private = serialization.load_pem_private_key(key.encode(), None)
    data = pkcs12.serialize_key_and_certificates(
        b"broker", private,  # type: ignore[arg-type]
        x509.load_pem_x509_certificate(cert.encode()),
        [x509.load_pem_x509_certificate(ca.encode())],
        serialization.BestAvailableEncryption(_KEYSTORE_PASSWORD.encode()))
    (conf / "broker.p12").write_bytes(data)


def activemq_tls(server: RunningServer) -> tuple[str, str]:
    """(``stomp+ssl://127.0.0.1:port``, the test CA's PEM) of an ActiveMQ's TLS connector."""
    assert server.workdir is not None
    return (f"stomp+ssl://{HOST}:{(server.workdir / 'tls-port').read_text()}",
            (server.workdir / "conf" / "ca.pem").read_text())


def start_activemq(
    log_dir: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    *,
    workdir: Path | None = None,
    port: int | None = None,
) -> RunningServer:
    """ActiveMQ Classic (Debian's activemq, the engine Amazon MQ for ActiveMQ runs) with a STOMP
    connector and user ``MQ_USER``; ``endpoint`` is ``stomp://host:port``, ``activemq_tls``
    its stomp+ssl connector. Persistent (KahaDB
    in ``workdir``): start it again with the same ``workdir`` and ``port`` to restart it."""
    jar = ACTIVEMQ_HOME / "bin" / "activemq.jar"
    if not jar.is_file():
        raise ServerStartError("activemq is not installed: run `make infra` "
                               "(tests/infra/install-mq.sh)")
    work = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="esm-poller-amq-"))
    for sub in ("conf", "data", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    log_dir = Path(log_dir) if log_dir is not None else work

    def once() -> RunningServer:
        if port is not None:
            chosen, tls_port = port, int((work / "tls-port").read_text())
        else:
            chosen, tls_port = _free_ports(2)
        (work / "tls-port").write_text(str(tls_port))
        keystore = work / "conf" / "broker.p12"
        if not keystore.is_file():
            _write_keystore(work / "conf")
        conf = work / "conf" / "activemq.xml"
        conf.write_text(_ACTIVEMQ_XML.format(
            host=HOST, port=chosen, data=work / "data", user=MQ_USER, password=MQ_PASSWORD,
            tls_port=tls_port, keystore=keystore, keystore_password=_KEYSTORE_PASSWORD))
        argv = [
            _java(), "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true", f"-Dactivemq.home={ACTIVEMQ_HOME}",
            f"-Dactivemq.base={work}",
            f"-Dactivemq.conf={work / 'conf'}", f"-Dactivemq.data={work / 'data'}",
            f"-Djava.io.tmpdir={work / 'tmp'}", "-jar", str(jar), "start", f"xbean:file:{conf}",
        ]
        server = _launch("activemq", argv, chosen, _tcp_probe(chosen), cwd=work,
                         log_dir=log_dir, timeout=timeout)
        return _with_workdir(server, f"stomp://{HOST}:{chosen}", work, workdir is None, log_dir)

    if port is not None:
        return once()
    return _with_port_retries(once)


SERVERS: dict[str, Callable[..., RunningServer]] = {
    "kafka": start_kafka,
    "kafka-auth": start_kafka_auth,
    "dynamodb-local": start_dynamodb_local,
    "kinesalite": start_kinesalite,
    "kinesis-local": start_kinesis_local,
    "moto": start_moto,
    "rabbitmq": start_rabbitmq,
    "activemq": start_activemq,
}


def start(
    name: str, log_dir: Path | None = None, timeout: float = DEFAULT_START_TIMEOUT
) -> RunningServer:
    try:
        starter = SERVERS[name]
    except KeyError:
        raise ValueError(f"unknown server {name!r}; known: {', '.join(SERVERS)}") from None
    return starter(log_dir=log_dir, timeout=timeout)


@contextlib.contextmanager
def running(name: str, log_dir: Path | None = None) -> Iterator[RunningServer]:
    server = start(name, log_dir=log_dir)
    try:
        yield server
    finally:
        server.stop()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        leftovers = list(_running)
    for server in leftovers:
        server.stop()


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.infra.servers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start servers and keep them until Ctrl-C")
    start_cmd.add_argument("names", nargs="+", choices=sorted(SERVERS))
    start_cmd.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="esm-poller-servers-"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    servers = []
    try:
        for name in args.names:
            server = start(name, log_dir=log_dir)
            servers.append(server)
            print(
                f"{server.name:14} {server.endpoint}  "
                f"(up in {server.startup_seconds:.2f} s, log {server.log_path})",
                flush=True,
            )
        print("Ctrl-C to stop", flush=True)
        while not stop.is_set():
            for server in servers:
                if server.process.poll() is not None:
                    print(f"{server.name} exited with code {server.process.returncode}")
                    return 1
            stop.wait(0.5)
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
