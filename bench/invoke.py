"""Invoke overhead: invokes per CPU-second of the caller, Lambda invoker vs raw aiohttp POSTs.

Starts the function host (``poller functionhost``, no-op handler) in a subprocess so it runs on
the other core, then in this process sends ``--invokes`` RequestResponse invokes of a
``--size``-byte JSON payload, ``--concurrency`` at a time, through:

- fast: :class:`poller.invokers.lambda_fast.FastLambdaInvoker` (the default ``Target.Client``:
  botocore's SigV4 signer on a reused aiohttp session);
- aiobotocore: :class:`poller.invokers.lambda_.LambdaInvoker` (``Target.Client: aiobotocore``);
- raw: ``aiohttp`` POSTs to the same invoke URL on one reused session (unsigned: the floor).

Invokes/s on one core = invokes / this process's CPU seconds (the host's CPU is not counted).
The final line is fast / raw and aiobotocore / raw (higher is better; the target is >= 0.75).

Run ``python -m bench.invoke [--invokes N] [--concurrency C] [--size BYTES]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from poller.awsclients import AwsClients
from poller.config_model import AwsConfig, ServiceEndpoint
from poller.invokers import InvokeResult
from poller.invokers.lambda_ import LambdaInvoker
from poller.invokers.lambda_fast import FastLambdaInvoker

ROOT = Path(__file__).resolve().parent.parent
FUNCTION = "noop"
REGION = "us-east-1"


@contextmanager
def function_host() -> Iterator[str]:
    """A function host subprocess serving the no-op handler; yields its endpoint."""
    from tests.infra.servers import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from poller.cli import main; raise SystemExit(main())",
         "functionhost", "--handler", "tests.functions.noop:handler", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"function host did not start: {line}{proc.stdout.read(2000)!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)


async def _drive(call: Callable[[], Awaitable[int]], invokes: int,
                 concurrency: int) -> dict[str, float]:
    for _ in range(min(concurrency, invokes)):  # warm-up: connections, clients, credentials
        await call()
    remaining = invokes
    failures = 0

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            if await call() != 200:
                failures += 1

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{failures} of {invokes} invokes failed")
    return {"cpu": cpu, "wall": wall, "cpu_us_per_invoke": 1e6 * cpu / invokes,
            "invokes_per_cpu_s": invokes / cpu if cpu > 0 else float("inf"),
            "invokes_per_s": invokes / wall}


async def run_fast(endpoint: str, payload: bytes, invokes: int,
                   concurrency: int) -> dict[str, float]:
    aws = AwsConfig(region=REGION, services={"lambda": ServiceEndpoint(endpoint_url=endpoint)})
    invoker = FastLambdaInvoker(aws, FUNCTION)

    async def call() -> int:
        result: InvokeResult = await invoker.invoke(payload)
        return result.status

    try:
        return await _drive(call, invokes, concurrency)
    finally:
        await invoker.close()


async def run_aiobotocore(endpoint: str, payload: bytes, invokes: int,
                          concurrency: int) -> dict[str, float]:
    aws = AwsConfig(region=REGION, services={"lambda": ServiceEndpoint(endpoint_url=endpoint)})
    async with AwsClients(aws) as clients:
        invoker = LambdaInvoker(clients, FUNCTION)

        async def call() -> int:
            result: InvokeResult = await invoker.invoke(payload)
            return result.status

        try:
            return await _drive(call, invokes, concurrency)
        finally:
            await invoker.close()


async def run_raw(endpoint: str, payload: bytes, invokes: int,
                  concurrency: int) -> dict[str, float]:
    url = f"{endpoint}/2015-03-31/functions/{FUNCTION}/invocations"
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async def call() -> int:
            async with session.post(url, data=payload, headers=headers) as resp:
                await resp.read()
                return resp.status

        return await _drive(call, invokes, concurrency)


PATHS: dict[str, Callable[[str, bytes, int, int], Coroutine[Any, Any, dict[str, float]]]] = {
    "fast": run_fast,
    "aiobotocore": run_aiobotocore,
    "raw": run_raw,
}


def run(invokes: int = 2000, concurrency: int = 16, size: int = 1024) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")  # the function host ignores signatures
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    payload = json.dumps({"Records": [], "pad": "x" * max(size - 30, 0)}).encode()
    results: dict[str, dict[str, float]] = {}
    with function_host() as endpoint:
        for name, fn in PATHS.items():
            results[name] = asyncio.run(fn(endpoint, payload, invokes, concurrency))
    ratios = {name: results[name]["invokes_per_cpu_s"] / results["raw"]["invokes_per_cpu_s"]
              for name in results if name != "raw"}
    return {"invokes": invokes, "concurrency": concurrency, "size": len(payload),
            "results": results, "ratios": ratios}


def report(result: dict[str, Any]) -> str:
    lines = [f"{result['invokes']:,} invokes of {result['size']:,} B, concurrency "
             f"{result['concurrency']}, function host in another process",
             f"  {'path':<12}{'CPU us/invoke':>15}{'invokes/CPU-s':>15}{'invokes/s':>11}"]
    for name, r in result["results"].items():
        lines.append(f"  {name:<12}{r['cpu_us_per_invoke']:>15.0f}{r['invokes_per_cpu_s']:>15.0f}"
                     f"{r['invokes_per_s']:>11.0f}")
    lines.append("  ratio: " + ", ".join(
        f"{name} vs raw aiohttp {ratio:.2f}x" for name, ratio in result["ratios"].items())
        + " invokes per CPU-second (target >= 0.75x)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.invoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invokes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    result = run(args.invokes, args.concurrency, args.size)
    print(report(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
