"""The `poller` command as a user runs it: validate, and run with SIGTERM drain, health and
metrics endpoints, against kinesalite and a function host in their own processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

from tests.helpers import create_stream, put_records, unique_name, wait_until
from tests.infra.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def poller(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poller", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False)


def test_validate_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(textwrap.dedent("""\
        mappings:
          - EventSourceArn: arn:aws:kinesis:us-east-1:000000000000:stream/orders
            FunctionName: f
            StartingPosition: SOMEWHERE
            BatchSize: 20000
            ParallelizationFactor: 11
            BatchSzie: 5
        """))
    result = poller("validate", "-c", str(cfg))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for expected in ("StartingPosition", "SOMEWHERE", "BatchSize", "20000", "10000",
                     "ParallelizationFactor", "11", "BatchSzie", "did you mean BatchSize"):
        assert expected in result.stderr, f"{expected!r} missing from:\n{result.stderr}"


def test_validate_accepts_the_example_and_prints_a_summary() -> None:
    result = poller("validate", "-c", str(ROOT / "examples" / "kinesis.yaml"))
    assert result.returncode == 0, result.stderr
    assert "kinesis" in result.stdout


def test_validate_accepts_the_kafka_example() -> None:
    result = poller("validate", "-c", str(ROOT / "examples" / "kafka.yaml"))
    assert result.returncode == 0, result.stderr
    assert "self-managed Kafka 127.0.0.1:9093 topic orders group orders-esm" in result.stdout


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = poller("run", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_sigterm_finishes_the_in_flight_batch_checkpoints_and_exits_0(
        kinesalite_endpoint: str, tmp_path: Path) -> None:
    stream = unique_name("drain")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    put_records(kinesalite_endpoint, stream, [("k", f"r{i}") for i in range(20)])
    probe_log, slow = tmp_path / "probe.log", tmp_path / "slow"
    slow.touch()
    fn_port, metrics_port = free_port(), free_port()
    env = dict(os.environ, PROBE_LOG=str(probe_log), PROBE_SLOW=str(slow), PROBE_SLEEP="2",
               PYTHONPATH=str(ROOT))
    host = subprocess.Popen([sys.executable, "-m", "poller", "functionhost", "--handler",
                             "tests.functions.sigterm_probe:handler", "--port", str(fn_port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    state = tmp_path / "state.db"
    cfg = tmp_path / "poller.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        aws:
          region: us-east-1
          kinesis: {{endpoint_url: {kinesalite_endpoint}}}
          lambda: {{endpoint_url: "http://127.0.0.1:${{FN_PORT}}"}}
        state: {{store: sqlite, path: {state}}}
        metrics: {{port: {metrics_port}, host: 127.0.0.1}}
        tuning: {{idle_poll_seconds: 0.1, shard_discovery_seconds: 1, drain_grace_seconds: 15}}
        mappings:
          - UUID: drain-test
            EventSourceArn: {arn}
            FunctionName: probe
            StartingPosition: TRIM_HORIZON
            BatchSize: 5
        """))
    env["FN_PORT"] = str(fn_port)
    try:
        assert host.stdout is not None and "listening" in host.stdout.readline()
        run = subprocess.Popen([sys.executable, "-m", "poller", "run", "-c", str(cfg)],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{metrics_port}"
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 30, message="never ready")
        assert _get(f"{base}/healthz")[0] == 200
        wait_until(lambda: probe_log.exists() and "start" in probe_log.read_text(), 30)
        run.send_signal(signal.SIGTERM)
        _out, err = run.communicate(timeout=30)
        assert run.returncode == 0, err
        lines = probe_log.read_text().splitlines()
        assert lines == ["start r0,r1,r2,r3,r4", "end r0,r1,r2,r3,r4"], lines
        with sqlite3.connect(state) as db:
            ((checkpoint,),) = db.execute(
                "SELECT checkpoint FROM checkpoints WHERE mapping = 'drain-test'").fetchall()
        assert checkpoint.isdigit(), err
        assert "poller_stopped" in err and "r0" not in err  # no payloads in logs

        slow.unlink()
        run = subprocess.Popen([sys.executable, "-m", "poller", "run", "-c", str(cfg)],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: probe_log.read_text().count("end") >= 4, 30)
        status, body = _get(f"{base}/metrics")
        assert status == 200 and 'esm_records_polled_total{mapping="drain-test"' in body
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
        assert run.returncode == 0
        starts = [line for line in probe_log.read_text().splitlines() if line.startswith("start")]
        assert starts == ["start r0,r1,r2,r3,r4", "start r5,r6,r7,r8,r9",
                          "start r10,r11,r12,r13,r14", "start r15,r16,r17,r18,r19"]
    finally:
        host.terminate()
        host.wait(10)


def test_run_without_credentials_says_so_and_exits_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k == "AWS_EC2_METADATA_DISABLED"}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run([sys.executable, "-m", "poller", "run", "-c",
                             str(ROOT / "examples" / "kinesis.yaml")], capture_output=True,
                            text=True, timeout=60, cwd=ROOT, env=env, check=False)
    assert result.returncode == 1
    assert "no AWS credentials found" in result.stderr and "Traceback" not in result.stderr
