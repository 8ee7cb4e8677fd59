"""The container image without a container engine: hadolint on the Dockerfile, the builder
stage's own script (docker/build.sh) run on the host from exactly the files the Dockerfile
copies, and the installed poller run as PID 1 of its own PID namespace on a read-only root
filesystem (writable: the state directory only), scraped by promtool and stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import create_stream, put_records, unique_name, wait_until
from tests.infra.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BIN = ROOT / "tests" / "infra" / ".cache" / "bin"
RECORDS = 12


def builder_copies() -> list[str]:
    """The source paths the builder stage COPYs from the build context."""
    stages = DOCKERFILE.read_text().split("\nFROM ")
    builder = next(s for s in stages if " AS builder" in s.splitlines()[0])
    paths: list[str] = []
    for line in builder.splitlines():
        words = line.split()
        if words and words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            paths += words[1:-1]
    return paths


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_lets_in_what_the_builder_copies() -> None:
    copies = builder_copies()
    assert {"pyproject.toml", "setup.py", "poller/", "docker/build.sh"} <= set(copies)
    admitted = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.startswith("!")}
    assert set(copies) <= admitted


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docker/build.sh wheels + install, run in a copy of exactly what the builder copies."""
    base = tmp_path_factory.mktemp("image")
    src = base / "src"
    for path in builder_copies():
        source, target = ROOT / path, src / path
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(
                "__pycache__", "*.so", "*.c"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    env = dict(os.environ, PYTHON=sys.executable, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("POLLER_NO_EXTENSIONS", None)
    for step in (["wheels", str(base / "wheels")],
                 ["install", str(base / "wheels"), str(base / "venv")]):
        result = subprocess.run(["docker/build.sh", *step], cwd=src, env=env,
                                capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return base / "venv"


def test_build_steps_install_the_compiled_batcher(installed: Path) -> None:
    code = ("import poller, poller.batching as b; "
            "print(b.IMPLEMENTATION, poller.__file__)")
    result = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd="/",
                            capture_output=True, text=True, timeout=60, check=True)
    implementation, location = result.stdout.split()
    assert implementation == "cython"
    assert Path(location).is_relative_to(installed)  # not the source checkout
    assert list(Path(location).parent.glob("_fastbatch*.so"))


@dataclass
class Running:
    process: subprocess.Popen[str]
    base_url: str
    run_dir: Path


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _processed(base_url: str) -> float:
    _status, body = _get(f"{base_url}/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("esm_records_processed_total{"))


@pytest.fixture(scope="module")
def read_only_poller(installed: Path, kinesalite_endpoint: str,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private read-only mount namespace")
    stream = unique_name("image")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    put_records(kinesalite_endpoint, stream,
                [(f"k{i}", json.dumps({"amount": i})) for i in range(RECORDS)])
    run_dir = tmp_path_factory.mktemp("volumes")
    (run_dir / "state").mkdir()
    (run_dir / "tmp").mkdir()
    port = free_port()
    config = run_dir / "poller.yaml"
    config.write_text(textwrap.dedent(f"""\
        aws: {{region: us-east-1, kinesis: {{endpoint_url: {kinesalite_endpoint}}}}}
        state: {{store: sqlite, path: {run_dir}/state/state.db}}
        metrics: {{port: {port}, host: 127.0.0.1}}
        tuning: {{idle_poll_seconds: 0.1, drain_grace_seconds: 10}}
        log: {{format: json}}
        mappings:
          - UUID: image-test
            EventSourceArn: {arn}
            FunctionName: sample
            StartingPosition: TRIM_HORIZON
            BatchSize: 5
            Target: {{Type: python, Handler: "poller.sample_handler:handler"}}
        """))
    # As in the image: the root filesystem read-only, writable volumes for state and /tmp.
    script = ('mount --bind "$RUN" "$RUN" && mount -o remount,bind,ro / && cd / && '
              'exec "$@"')
    env = {"PATH": f"{installed}/bin:/usr/bin:/bin", "RUN": str(run_dir),
           "HOME": f"{run_dir}/state", "TMPDIR": f"{run_dir}/tmp", "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc",
         "sh", "-c", script, "sh", "poller", "run", "-c", str(config)],
        env=env, stderr=subprocess.PIPE, text=True, cwd="/")
    running = Running(process, f"http://127.0.0.1:{port}", run_dir)
    try:
        wait_until(lambda: process.poll() is not None or _get(f"{running.base_url}/readyz")[0]
                   == 200, 60, message="the poller never became ready")
        assert process.poll() is None, process.communicate()[1]
        wait_until(lambda: _processed(running.base_url) >= RECORDS, 60,
                   message="records were not processed")
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _poller_pid(unshare_pid: int) -> int:
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_promtool_accepts_a_real_metrics_scrape(read_only_poller: Running) -> None:
    status, body = _get(f"{read_only_poller.base_url}/metrics")
    assert status == 200 and "esm_records_processed_total" in body
    promtool = BIN / "promtool"
    if not promtool.exists():
        pytest.fail(f"{promtool} is missing: run `make infra` (tests/infra/tools.sh)")
    result = subprocess.run([str(promtool), "check", "metrics"], input=body,
                            capture_output=True, text=True, timeout=60, check=False)
    # The one lint finding is deliberate: the name and unit mirror Lambda's IteratorAge (ms).
    assert result.stderr.splitlines() == [
        'esm_iterator_age_milliseconds use base unit "seconds" instead of "milliseconds"'], \
        result.stdout + result.stderr
    unlinted = subprocess.run([str(promtool), "check", "metrics", "--lint=none", "--extended"],
                              input=body,
                              capture_output=True, text=True, timeout=60, check=False)
    assert unlinted.returncode == 0, unlinted.stdout + unlinted.stderr


def test_pid_1_on_a_read_only_root_drains_on_sigterm_and_exits_0(
        read_only_poller: Running) -> None:
    process = read_only_poller.process
    pid = _poller_pid(process.pid)
    status = Path(f"/proc/{pid}/status").read_text()
    ns_pids = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()
    assert ns_pids[-1] == "1", status  # PID 1 inside its namespace, no init process
    assert "poller" in Path(f"/proc/{pid}/cmdline").read_text()
    os.kill(pid, signal.SIGTERM)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "poller_stopped" in err and "Read-only file system" not in err
    with sqlite3.connect(read_only_poller.run_dir / "state" / "state.db") as db:
        rows = db.execute("SELECT checkpoint FROM checkpoints WHERE mapping = 'image-test'"
                          ).fetchall()
    assert len(rows) == 1 and rows[0][0].isdigit(), rows
    written = {p.relative_to(read_only_poller.run_dir).parts[0]
               for p in read_only_poller.run_dir.rglob("*") if p.is_file()}
    assert written <= {"poller.yaml", "state"}, written
