"""Real servers for tests and demos, each started as a subprocess on a free loopback port.

    server = start("kinesalite")          # or "kinesis-local", "moto"
    ... use server.endpoint ...
    server.stop()

From a shell: ``python -m tests.infra.servers start kinesalite [moto ...]`` prints the endpoints
and keeps the servers running until Ctrl-C.

The npm servers come from ``tests/infra/install.sh`` (``make infra``); moto from ``.[test]``.
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
    "RunningServer",
    "ServerStartError",
    "free_port",
    "start",
    "start_dynamodb_local",
    "start_kinesalite",
    "start_kinesis_local",
    "start_moto",
]

INFRA_DIR = Path(__file__).resolve().parent
NODE_MODULES = INFRA_DIR / "node_modules"
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
    log_dir: Path | None = None, timeout: float = DEFAULT_START_TIMEOUT
) -> RunningServer:
    """kinesis-local (kinesis-mock), plain HTTP on the endpoint's port, nothing persisted."""
    main_js = _npm_package("kinesis-local", "main.js")

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
        argv = [_node(), "--require", str(LOOPBACK_SHIM), str(main_js)]
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


SERVERS: dict[str, Callable[..., RunningServer]] = {
    "dynamodb-local": start_dynamodb_local,
    "kinesalite": start_kinesalite,
    "kinesis-local": start_kinesis_local,
    "moto": start_moto,
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
