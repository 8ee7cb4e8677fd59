"""Every benchmark in one run, each printing its table and ratio line; results to JSON.

``poller bench all`` (``make bench``) runs them with their default sizes and writes
``bench/results.json`` (the machine, the command and every result); ``--small`` uses sizes of a
few seconds each (the smoke test); ``--only kinesis,invoke`` picks some.

Run ``python -m bench.all [--small] [--only NAMES] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results.json"

# name -> (keyword arguments of run() at full size, at small size); a list runs each in turn
SIZES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "idle": ([{"shards": 1000, "window": 30.0}], [{"shards": 10, "window": 1.0, "pickups": 2}]),
    "batcher": ([{"records": 10_000, "size": 1024}, {"records": 10_000, "size": 100}],
                [{"records": 500, "size": 1024, "repeat": 1}]),
    "kinesis": ([{"records": 20_000, "size": 100, "batch_size": 100}],
                [{"records": 300, "size": 100, "batch_size": 100}]),
    "invoke": ([{"invokes": 3000, "concurrency": 16}], [{"invokes": 50, "concurrency": 4}]),
    "kafka": ([{"records": 200_000, "size": 100, "batch_size": 500}],
              [{"records": 500, "size": 100, "batch_size": 100}]),
    "latency": ([{"records": 40, "interval": 0.25}], [{"records": 3, "interval": 0.1}]),
    "mq": ([{"messages": 20_000, "size": 100, "batch_size": 100}],
           [{"messages": 300, "size": 100, "batch_size": 50}]),
}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform()}


def _child(name: str, small: bool) -> list[dict[str, Any]]:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.all", "--in-process", "--only", name,
                   "--out", str(out)] + (["--small"] if small else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
        done = subprocess.run(command, cwd=root, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"benchmark {name} failed (exit {done.returncode})")
        result: list[dict[str, Any]] = json.loads(out.read_text())["results"][name]
        return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="tiny sizes (seconds each)")
    parser.add_argument("--only", help="comma-separated names (default: all)")
    parser.add_argument("--out", help=f"results JSON (default {OUT}; none with --small)")
    parser.add_argument("--in-process", action="store_true",
                        help="run in this process (default: each benchmark in its own, so "
                             "none measures another's threads, heap or RSS)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SIZES)
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SIZES)}",
              file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")  # the local servers accept any
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    results: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if not args.in_process:
            results[name] = _child(name, args.small)
            continue
        module = importlib.import_module(f"bench.{name}")
        run: Callable[..., dict[str, Any]] = module.run
        report: Callable[[dict[str, Any]], str] = module.report
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        for kwargs in SIZES[name][1 if args.small else 0]:
            result = run(**kwargs)
            results.setdefault(name, []).append(result)
            print(report(result), flush=True)
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    out = args.out or (None if args.small else str(OUT))
    if out:
        document = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": "poller bench all" + (" --small" if args.small else ""),
            "machine": machine(),
            "results": results,
        }
        Path(out).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        if not args.in_process:
            print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
