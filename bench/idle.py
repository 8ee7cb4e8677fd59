"""Idle scale: one replica reading many idle kinesalite shards — RSS, CPU share, pick-up time.

Creates a stream of ``--shards`` shards (default 1,000) on kinesalite, runs the real service
(python no-op target, default tuning: one GetRecords per idle shard per second) until every
shard is being read, then over ``--window`` seconds measures this process's CPU share of one
core and its peak RSS (kinesalite runs in another process). Last, it puts one record and times
its arrival at the function (the poll interval is 1 s when caught up).

Run ``python -m bench.idle [--shards N] [--window SECONDS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from poller.config_model import (
    AwsConfig,
    Config,
    Mapping,
    MetricsConfig,
    ServiceEndpoint,
    StateConfig,
    Target,
)
from poller.observability import metrics
from poller.service import Service
from tests.helpers import create_stream, make_boto3_client, wait_for

_arrived = threading.Event()


def handler(event: Any, context: Any) -> None:
    _arrived.set()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _shards(mapping_uuid: str) -> float:
    total = 0.0
    for family in metrics.shards_owned.collect():
        for s in family.samples:
            if s.labels.get("mapping") == mapping_uuid:
                total += s.value
    return total


async def _run(endpoint: str, stream: str, arn: str, shards: int, window: float,
               state: str) -> dict[str, float]:
    _arrived.clear()
    mapping = Mapping(uuid=f"bench-{uuid.uuid4().hex[:8]}", event_source_arn=arn,
                      function_name="idle", starting_position="LATEST",
                      target=Target(type="python", handler="bench.idle:handler"))
    config = Config(mappings=(mapping,),
                    aws=AwsConfig(region="us-east-1",
                                  services={"kinesis": ServiceEndpoint(endpoint_url=endpoint)}),
                    state=StateConfig(path=state), metrics=MetricsConfig(port=0))
    service = Service(config)
    started = time.perf_counter()
    await service.start()
    try:
        await wait_for(lambda: _shards(mapping.uuid) >= shards, 300, interval=0.1,
                       message="not every shard is being read")
        ramp = time.perf_counter() - started
        await asyncio.sleep(min(window, 5.0))  # let the first round of iterators settle
        peak = _rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        end = t0 + window
        while time.perf_counter() < end:
            await asyncio.sleep(0.5)
            peak = max(peak, _rss_mb())
        cpu_share = (time.process_time() - c0) / (time.perf_counter() - t0)
        client = make_boto3_client("kinesis", endpoint)
        sent = time.perf_counter()
        await asyncio.to_thread(client.put_record, StreamName=stream, Data=b"wake",
                                PartitionKey="k")
        await wait_for(_arrived.is_set, 60, interval=0.01, message="the record never arrived")
        pickup = time.perf_counter() - sent
        return {"ramp_s": ramp, "rss_mb": peak, "cpu_share": cpu_share, "pickup_s": pickup,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3}
    finally:
        await service.stop()


def run(shards: int = 1000, window: float = 30.0) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    from tests.infra.servers import start

    server = start("kinesalite")
    try:
        stream = f"idle-{uuid.uuid4().hex[:8]}"
        arn = create_stream(server.endpoint, stream, shards=shards, timeout=120)
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(_run(server.endpoint, stream, arn, shards, window,
                                      f"{tmp}/state.db"))
    finally:
        server.stop()
    return {"shards": shards, "window": window, "results": result}


def report(result: dict[str, Any]) -> str:
    r = result["results"]
    return "\n".join([
        f"{result['shards']:,} idle kinesalite shards, one replica, {result['window']:g} s window",
        f"  {'RSS MB':>8}{'CPU % of a core':>17}{'pick-up s':>11}{'all shards read after s':>25}",
        f"  {r['rss_mb']:>8.0f}{100 * r['cpu_share']:>17.1f}{r['pickup_s']:>11.2f}"
        f"{r['ramp_s']:>25.1f}",
        f"  ratio: RSS {r['rss_mb']:.0f} MB / 200 MB = {r['rss_mb'] / 200:.2f}x, CPU "
        f"{100 * r['cpu_share']:.1f} % / 25 % = {r['cpu_share'] / 0.25:.2f}x of the targets",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args(argv)
    print(report(run(args.shards, args.window)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
