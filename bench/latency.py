"""Produce-to-function latency at low load, zero batching window: Kinesis and Kafka.

For each source the real service runs with a python target (:func:`handler`, in this process)
and default tuning; after one warm-up record has arrived, ``--records`` records are produced one
at a time, ``--interval`` seconds apart, each carrying its send time. The handler records
``now - sent`` per record. Kinesis records go through kinesalite (PutRecord), Kafka records
through the real broker (acks=1).

Run ``python -m bench.latency [--records N] [--interval SECONDS] [--sources kinesis,kafka]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from poller.config_model import (
    AwsConfig,
    Config,
    KafkaSource,
    Mapping,
    MetricsConfig,
    ServiceEndpoint,
    StateConfig,
    Target,
)
from poller.service import Service
from tests.helpers import wait_for

HANDLER = "bench.latency:handler"
_lock = threading.Lock()
_latencies: list[float] = []


def handler(event: dict[str, Any], context: Any) -> None:
    now = time.time()
    if "Records" in event:
        datas = [r["kinesis"]["data"] for r in event["Records"]]
    else:
        datas = [r["value"] for recs in event["records"].values() for r in recs]
    with _lock:
        _latencies.extend(now - json.loads(base64.b64decode(d))["t"] for d in datas)


def _count() -> int:
    with _lock:
        return len(_latencies)


def _stamp() -> bytes:
    return json.dumps({"t": time.time()}).encode()


async def _measure(config: Config, send: Any, records: int, interval: float) -> list[float]:
    with _lock:
        _latencies.clear()
    service = Service(config)
    await service.start()
    try:
        await send()  # warm-up: the reader is running and caught up once this arrives
        await wait_for(lambda: _count() >= 1, 120, interval=0.01,
                       message="the warm-up record never arrived")
        with _lock:
            _latencies.clear()
        for _ in range(records):
            await send()
            await asyncio.sleep(interval)
        await wait_for(lambda: _count() >= records, 60, interval=0.01,
                       message="not every record arrived")
        with _lock:
            return list(_latencies)
    finally:
        await service.stop()


async def kinesis(endpoint: str, state: str, records: int, interval: float) -> list[float]:
    from tests.helpers import create_stream, make_boto3_client

    name = f"latency-{uuid.uuid4().hex[:8]}"
    arn = create_stream(endpoint, name)
    client = make_boto3_client("kinesis", endpoint)
    mapping = Mapping(uuid=f"bench-{uuid.uuid4().hex[:8]}", event_source_arn=arn,
                      function_name="latency", starting_position="TRIM_HORIZON",
                      batch_size=100, maximum_batching_window_in_seconds=0,
                      target=Target(type="python", handler=HANDLER))
    config = Config(mappings=(mapping,),
                    aws=AwsConfig(region="us-east-1",
                                  services={"kinesis": ServiceEndpoint(endpoint_url=endpoint)}),
                    state=StateConfig(path=state), metrics=MetricsConfig(port=0))

    async def send() -> None:
        await asyncio.to_thread(client.put_record, StreamName=name, Data=_stamp(),
                                PartitionKey="k")

    return await _measure(config, send, records, interval)


async def kafka(bootstrap: str, state: str, records: int, interval: float) -> list[float]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"latency-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    mapping_uuid = f"bench-{uuid.uuid4().hex[:8]}"
    mapping = Mapping(uuid=mapping_uuid, event_source_arn="", function_name="latency",
                      starting_position="TRIM_HORIZON", batch_size=100,
                      maximum_batching_window_in_seconds=0,
                      kafka=KafkaSource(topic=topic, bootstrap_servers=(bootstrap,),
                                        consumer_group_id=mapping_uuid, managed=False),
                      target=Target(type="python", handler=HANDLER))
    config = Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1"),
                    state=StateConfig(path=state), metrics=MetricsConfig(port=0))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await producer.start()

    async def send() -> None:
        await producer.send_and_wait(topic, _stamp())

    try:
        return await _measure(config, send, records, interval)
    finally:
        await producer.stop()


def _summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(1000 * x for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]

    return {"count": len(ms), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": ms[-1],
            "mean_ms": statistics.fmean(ms)}


def run(records: int = 40, interval: float = 0.25,
        sources: Sequence[str] = ("kinesis", "kafka")) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    from tests.infra.servers import start

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            server = start("kinesalite" if source == "kinesis" else "kafka")
            try:
                measure = kinesis if source == "kinesis" else kafka
                latencies = asyncio.run(measure(server.endpoint, f"{tmp}/{source}.db",
                                                records, interval))
            finally:
                server.stop()
            results[source] = _summary(latencies)
    return {"records": records, "interval": interval, "results": results}


TARGETS = {"kinesis": ("p50_ms", 250.0), "kafka": ("p99_ms", 50.0)}


def report(result: dict[str, Any]) -> str:
    lines = [f"{result['records']} records per source, one every {result['interval']:g} s, "
             "window 0, default tuning",
             f"  {'source':<9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    for source, r in result["results"].items():
        lines.append(f"  {source:<9}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}")
    lines.append("  ratio: " + ", ".join(
        f"{source} {TARGETS[source][0][:3]} {r[TARGETS[source][0]]:.0f} ms / target "
        f"{TARGETS[source][1]:.0f} ms = {r[TARGETS[source][0]] / TARGETS[source][1]:.2f}x"
        for source, r in result["results"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--sources", default="kinesis,kafka")
    args = parser.parse_args(argv)
    print(report(run(args.records, args.interval, args.sources.split(","))), flush=True)
    return 0


if __name__ == "__main__":  # run as bench.latency: the target's handler records into it
    from bench.latency import main as imported_main

    raise SystemExit(imported_main())
