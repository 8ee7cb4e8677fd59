"""Idle scale: one replica reading many idle kinesalite shards — RSS, CPU share, pick-up time.

Creates a stream of ``--shards`` shards (default 1,000) on kinesalite, runs the real service
(python no-op target, default tuning: one GetRecords per idle shard per second) until every
shard is being read, then over ``--window`` seconds measures this process's CPU share of one
core and its peak RSS (kinesalite runs in another process). Last, it puts ``--pickups`` records
(one at a time, to random shards) and times each one's arrival at the function (the poll
interval is 1 s when caught up).

To tell the poller's share of a slow pick-up from the server's, it also measures during the
window: the GetRecords calls/s the poller achieved, the event loop's lag (a 50 ms timer's
lateness), kinesalite's CPU share (a single Node process: ~100 % means saturated) and the
latency of a probe GetRecords on one shard every 100 ms; and, after the poller stopped, the
GetRecords/s kinesalite sustains for a closed loop of 64 concurrent raw signed calls (the
poller's own client, ``poller.awsjson``) on the same shards.

Run ``python -m bench.idle [--shards N] [--window SECONDS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import random
import resource
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp

from poller.awsjson import AwsJsonClient
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
from poller.sources.shards import ShardCoordinator
from tests.helpers import create_stream, make_boto3_client, wait_for

_arrived = threading.Event()


def handler(event: Any, context: Any) -> None:
    _arrived.set()


def _handler_event() -> threading.Event:
    """The event the target's handler sets: ``bench.idle`` as imported by the target (also
    when this file runs as ``__main__``)."""
    module = importlib.import_module("bench.idle")
    return module._arrived  # type: ignore[no-any-return]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (the server may run under a wrapper)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.05)
        samples.append(time.perf_counter() - t - 0.05)


def _client(endpoint: str, session: aiohttp.ClientSession, lean: bool = True) -> AwsJsonClient:
    aws = AwsConfig(region="us-east-1",
                    services={"kinesis": ServiceEndpoint(endpoint_url=endpoint)})
    return AwsJsonClient(service="kinesis", signing_name="kinesis",
                         target_prefix="Kinesis_20131202", json_version="1.1", aws=aws,
                         session=session, lean=lean)


async def _iterator(client: AwsJsonClient, stream: str, shard: str) -> str:
    resp = await client.call("GetShardIterator", {"StreamName": stream, "ShardId": shard,
                                                  "ShardIteratorType": "LATEST"})
    return str(resp["ShardIterator"])


async def _probe(client: AwsJsonClient, stream: str, latencies: list[float],
                 stop: asyncio.Event) -> None:
    """One GetRecords on one shard every 100 ms, timed: the server's answer time under load."""
    iterator = await _iterator(client, stream, "shardId-000000000000")
    while not stop.is_set():
        t = time.perf_counter()
        resp = await client.call("GetRecords", {"ShardIterator": iterator, "Limit": 10000})
        latencies.append(time.perf_counter() - t)
        iterator = resp["NextShardIterator"]
        await asyncio.sleep(0.1)


async def server_capacity(endpoint: str, stream: str, shards: int, pid: int,
                          seconds: float = 5.0, concurrency: int = 64,
                          lean: bool = True) -> dict[str, float]:
    """GetRecords/s the server answers for ``concurrency`` callers in a closed loop, and this
    process's CPU per call (``lean``: ``poller.awshttp``, else the aiohttp session)."""
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        client = _client(endpoint, session, lean)
        ids = [f"shardId-{i:012d}" for i in range(min(shards, concurrency))]
        iterators = list(await asyncio.gather(*(_iterator(client, stream, i) for i in ids)))
        calls = 0
        latencies: list[float] = []
        end = time.perf_counter() + seconds

        async def caller(i: int) -> None:
            nonlocal calls
            while time.perf_counter() < end:
                t = time.perf_counter()
                resp = await client.call("GetRecords", {"ShardIterator": iterators[i],
                                                        "Limit": 10000})
                latencies.append(time.perf_counter() - t)
                iterators[i] = resp["NextShardIterator"]
                calls += 1

        t0, s0, c0 = time.perf_counter(), _cpu_seconds(pid), time.process_time()
        await asyncio.gather(*(caller(i) for i in range(len(ids))))
        wall = time.perf_counter() - t0
        client_cpu = time.process_time() - c0
        client.close()
        return {"calls_per_s": calls / wall, "server_cpu_share": (_cpu_seconds(pid) - s0) / wall,
                "client_cpu_ms_per_call": 1000 * client_cpu / max(1, calls),
                "latency_p50_ms": 1000 * _pct(latencies, 0.5),
                "latency_p99_ms": 1000 * _pct(latencies, 0.99)}


def _polls(service: Service) -> int:
    return sum(reader.polls for runner in service.mappings.values()
               if isinstance(runner, ShardCoordinator)
               for reader, _sink, _task in runner.readers.values())


def _shards(mapping_uuid: str) -> float:
    total = 0.0
    for family in metrics.shards_owned.collect():
        for s in family.samples:
            if s.labels.get("mapping") == mapping_uuid:
                total += s.value
    return total


async def _run(endpoint: str, stream: str, arn: str, shards: int, window: float,
               state: str, pid: int, pickups: int) -> dict[str, Any]:
    arrived = _handler_event()
    arrived.clear()
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
        stop = asyncio.Event()
        lag: list[float] = []
        probe: list[float] = []
        session = aiohttp.ClientSession()
        probe_client = _client(endpoint, session)
        tasks = [asyncio.create_task(_loop_lag(lag, stop)),
                 asyncio.create_task(_probe(probe_client, stream, probe, stop))]
        t0, c0, s0, p0 = (time.perf_counter(), time.process_time(), _cpu_seconds(pid),
                          _polls(service))
        end = t0 + window
        while time.perf_counter() < end:
            await asyncio.sleep(0.5)
            peak = max(peak, _rss_mb())
        wall = time.perf_counter() - t0
        cpu_share = (time.process_time() - c0) / wall
        server_share = (_cpu_seconds(pid) - s0) / wall
        polls_per_s = (_polls(service) - p0) / wall
        stop.set()
        await asyncio.gather(*tasks)
        probe_client.close()
        await session.close()
        client = make_boto3_client("kinesis", endpoint)
        waits: list[float] = []
        puts: list[float] = []
        for i in range(pickups):
            arrived.clear()
            sent = time.perf_counter()
            await asyncio.to_thread(client.put_record, StreamName=stream, Data=b"wake",
                                    PartitionKey=f"k{i}-{random.random()}")
            puts.append(time.perf_counter() - sent)
            await wait_for(arrived.is_set, 60, interval=0.01,
                           message=f"record {i + 1} of {pickups} never arrived")
            waits.append(time.perf_counter() - sent)
        return {"ramp_s": ramp, "rss_mb": peak, "cpu_share": cpu_share,
                "pickup_s": statistics.median(waits), "pickup_max_s": max(waits),
                "pickups": waits, "put_s": statistics.median(puts),
                "pickup_after_put_s": statistics.median(w - p for w, p in zip(waits, puts,
                                                                               strict=True)),
                "polls_per_s": polls_per_s, "server_cpu_share": server_share,
                "loop_lag_p50_ms": 1000 * _pct(lag, 0.5),
                "loop_lag_p99_ms": 1000 * _pct(lag, 0.99),
                "probe_p50_ms": 1000 * _pct(probe, 0.5), "probe_p99_ms": 1000 * _pct(probe, 0.99),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3}
    finally:
        await service.stop()


def run(shards: int = 1000, window: float = 30.0, pickups: int = 5,
        server_name: str = "kinesalite") -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    from tests.infra.servers import start

    server = start(server_name)
    try:
        stream = f"idle-{uuid.uuid4().hex[:8]}"
        arn = create_stream(server.endpoint, stream, shards=shards, timeout=120)
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(_run(server.endpoint, stream, arn, shards, window,
                                      f"{tmp}/state.db", server.process.pid, pickups))
        capacity = asyncio.run(server_capacity(
            server.endpoint, stream, shards, server.process.pid,
            seconds=min(5.0, max(1.0, window / 2))))
        baseline = asyncio.run(server_capacity(
            server.endpoint, stream, shards, server.process.pid,
            seconds=min(5.0, max(1.0, window / 2)), lean=False))
    finally:
        server.stop()
    return {"shards": shards, "window": window, "server": server_name, "results": result,
            "server_capacity": capacity, "aiohttp_capacity": baseline}


def report(result: dict[str, Any]) -> str:
    r = result["results"]
    c = result["server_capacity"]
    b = result["aiohttp_capacity"]
    return "\n".join([
        f"{result['shards']:,} idle {result['server']} shards, one replica, "
        f"{result['window']:g} s window",
        f"  {'RSS MB':>8}{'CPU % of a core':>17}{'pick-up s':>11}{'all shards read after s':>25}",
        f"  {r['rss_mb']:>8.0f}{100 * r['cpu_share']:>17.1f}{r['pickup_s']:>11.2f}"
        f"{r['ramp_s']:>25.1f}",
        f"  pick-up median {r['pickup_s']:.2f} s, max {r['pickup_max_s']:.2f} s over "
        f"{len(r['pickups'])} records (PutRecord itself {r['put_s']:.2f} s, after it returned "
        f"{r['pickup_after_put_s']:.2f} s)",
        f"  during the window: poller {r['polls_per_s']:.0f} GetRecords/s "
        f"({1000 * r['cpu_share'] / max(r['polls_per_s'], 1e-9):.2f} ms CPU each), "
        f"event-loop lag p50 "
        f"{r['loop_lag_p50_ms']:.1f} ms p99 {r['loop_lag_p99_ms']:.1f} ms; {result['server']} "
        f"{100 * r['server_cpu_share']:.0f} % of a core, probe GetRecords p50 "
        f"{r['probe_p50_ms']:.1f} ms p99 {r['probe_p99_ms']:.1f} ms",
        f"  {result['server']} alone, 64 callers in a closed loop: "
        f"{c['calls_per_s']:.0f} GetRecords/s "
        f"at {100 * c['server_cpu_share']:.0f} % of a core (p50 {c['latency_p50_ms']:.1f} ms, "
        f"p99 {c['latency_p99_ms']:.1f} ms)",
        f"  client CPU per GetRecords in that loop: poller.awshttp "
        f"{c['client_cpu_ms_per_call']:.3f} ms, aiohttp (baseline, {b['calls_per_s']:.0f}/s) "
        f"{b['client_cpu_ms_per_call']:.3f} ms = "
        f"{c['client_cpu_ms_per_call'] / b['client_cpu_ms_per_call']:.2f}x",
        f"  ratio: RSS {r['rss_mb']:.0f} MB / 200 MB = {r['rss_mb'] / 200:.2f}x, CPU "
        f"{100 * r['cpu_share']:.1f} % / 25 % = {r['cpu_share'] / 0.25:.2f}x of the targets",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--pickups", type=int, default=5)
    parser.add_argument("--server", default="kinesalite", choices=("kinesalite", "kinesis-local"),
                        help="the Kinesis server to read (kinesis-local: the Java one)")
    args = parser.parse_args(argv)
    print(report(run(args.shards, args.window, args.pickups, args.server)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
