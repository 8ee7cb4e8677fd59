"""Kafka source throughput: records/s and CPU-seconds per 1M records, poller vs bare aiokafka.

Starts the real broker (``tests/infra/servers.py``), produces ``--records`` records of
``--size`` bytes into a topic of ``--partitions`` partitions, then in one run on the same topic:

- bare: an ``AIOKafkaConsumer`` ``getmany(max_records=BatchSize)`` loop that only counts;
- poller: the real service (self-managed Kafka source -> Kafka event JSON -> python target
  ``tests.functions.noop:handler``), BatchSize ``--batch-size``, window 0, from TRIM_HORIZON.

Both are timed from their first record on (group join and metadata are not throughput); CPU
is this process's (``time.process_time``), the broker runs in another process. The final line
is poller records/s / bare records/s (higher is better; the target is >= 0.7).

Run ``python -m bench.kafka [--records N] [--size BYTES] [--batch-size B] [--partitions P]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from poller.config_model import (
    AwsConfig,
    Config,
    KafkaSource,
    Mapping,
    MetricsConfig,
    StateConfig,
    Target,
    TuningConfig,
)
from poller.observability import metrics
from poller.service import Service
from tests.helpers import wait_for


async def _fill(bootstrap: str, partitions: int, records: int, size: int) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)])
    finally:
        await admin.close()
    rng = random.Random(1)
    values = [rng.randbytes(size) for _ in range(min(records, 1000))]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20, acks=1)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=values[i % len(values)],
                                       key=b"k%d" % (i % 100), partition=i % partitions)
                   for i in range(records)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return topic


def _result(records: int, first: float, cpu: float, wall: float) -> dict[str, float]:
    timed = records - first
    return {"timed_records": timed, "cpu": cpu, "wall": wall,
            "records_per_s": timed / wall if wall > 0 else float("inf"),
            "cpu_s_per_1m": 1e6 * cpu / timed if timed else float("nan")}


async def run_bare(bootstrap: str, topic: str, records: int, batch_size: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        first = 0
        t0 = c0 = 0.0
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=batch_size)
            got = sum(len(b) for b in batches.values())
            if got and not first:
                first = got
                t0, c0 = time.perf_counter(), time.process_time()
            seen += got
        return _result(records, first, time.process_time() - c0, time.perf_counter() - t0)
    finally:
        await consumer.stop()


async def run_poller(bootstrap: str, topic: str, records: int, batch_size: int,
                     state: str, partitions: int = 1) -> dict[str, float]:
    mapping_uuid = f"bench-{uuid.uuid4().hex[:8]}"
    source = KafkaSource(topic=topic, bootstrap_servers=tuple(bootstrap.split(",")),
                         consumer_group_id=mapping_uuid, managed=False)
    mapping = Mapping(uuid=mapping_uuid, event_source_arn="", function_name="noop",
                      starting_position="TRIM_HORIZON", batch_size=batch_size,
                      maximum_batching_window_in_seconds=0, kafka=source,
                      target=Target(type="python", handler="tests.functions.noop:handler"))
    config = Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1"),
                    state=StateConfig(path=state), metrics=MetricsConfig(port=0),
                    tuning=TuningConfig(kafka_session_timeout_seconds=10))
    service = Service(config)
    await service.start()
    try:
        # read the counters directly: collecting the metric family every few ms cost the
        # measured process ~2 % of its samples
        counters = [metrics.records_processed.labels(mapping_uuid, f"{topic}-{p}")
                    for p in range(partitions)]

        def processed() -> float:
            return float(sum(c._value.get() for c in counters))

        first = await wait_for(processed, 600, interval=0.002,
                               message="the poller processed nothing")
        t0, c0 = time.perf_counter(), time.process_time()
        await wait_for(lambda: processed() >= records, 600, interval=0.005,
                       message="the poller did not process every record")
        return _result(records, first, time.process_time() - c0, time.perf_counter() - t0)
    finally:
        await service.stop()


def run(records: int = 100_000, size: int = 100, batch_size: int = 500,
        partitions: int = 1) -> dict[str, Any]:
    from tests.infra.servers import start

    server = start("kafka")
    try:
        topic = asyncio.run(_fill(server.endpoint, partitions, records, size))
        with tempfile.TemporaryDirectory() as tmp:
            bare = asyncio.run(run_bare(server.endpoint, topic, records, batch_size))
            poller = asyncio.run(run_poller(server.endpoint, topic, records, batch_size,
                                            f"{tmp}/state.db", partitions))
    finally:
        server.stop()
    return {"records": records, "size": size, "batch_size": batch_size,
            "partitions": partitions, "results": {"poller": poller, "bare": bare},
            "ratio": poller["records_per_s"] / bare["records_per_s"],
            "cpu_ratio": poller["cpu_s_per_1m"] / bare["cpu_s_per_1m"]}


def report(result: dict[str, Any]) -> str:
    lines = [f"{result['records']:,} records x {result['size']:,} B, BatchSize "
             f"{result['batch_size']}, {result['partitions']} partition(s), real broker",
             f"  {'path':<8}{'records/s':>11}{'CPU s per 1M':>14}{'timed records':>15}"]
    for name in ("poller", "bare"):
        r = result["results"][name]
        lines.append(f"  {name:<8}{r['records_per_s']:>11.0f}{r['cpu_s_per_1m']:>14.1f}"
                     f"{r['timed_records']:>15,.0f}")
    lines.append(f"  ratio: poller vs bare aiokafka getmany {result['ratio']:.2f}x records/s "
                 f"(target >= 0.7x), {result['cpu_ratio']:.1f}x CPU per record")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    result = run(args.records, args.size, args.batch_size, args.partitions)
    print(report(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
