"""Kinesis source CPU cost: poller CPU-seconds per record vs a naive aiobotocore loop.

Starts kinesalite, fills one stream (``--shards`` shards) with ``--records`` records of
``--size`` bytes, then in one run and on the same stream measures this process's CPU time
(``time.process_time``: every thread, kinesalite excluded) per record for:

- poller: the real service (Kinesis source -> batcher -> python target
  ``tests.functions.noop:handler``), BatchSize ``--batch-size``, from TRIM_HORIZON;
- naive: a straightforward aiobotocore loop over every shard (get_records -> one event dict per
  record -> ``json.dumps`` of the event -> call the same no-op handler).

Both sides are measured twice: in steady state (from the first record processed on: client
creation, SQLite, shard discovery and the first GetRecords excluded on both sides alike) and
from start-up. The final line is the steady-state ratio poller / naive (lower is better; the
target is <= 0.2).

Run ``python -m bench.kinesis [--records N] [--size BYTES] [--batch-size B] [--shards S]``.
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

from poller.config_model import (
    AwsConfig,
    Config,
    Mapping,
    MetricsConfig,
    ServiceEndpoint,
    StateConfig,
    Target,
    TuningConfig,
)
from poller.observability import metrics
from poller.service import Service
from tests.functions.noop import handler as noop
from tests.helpers import create_stream, list_shard_ids, put_records, wait_for

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::000000000000:role/bench-noop-role"
TUNING = TuningConfig(shard_discovery_seconds=1.0, idle_poll_seconds=0.1,
                      min_poll_interval_seconds=0.0, checkpoint_flush_seconds=0.2)


def _fill(endpoint: str, shards: int, records: int, size: int) -> tuple[str, str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    arn = create_stream(endpoint, name, shards=shards)
    rng = random.Random(1)
    put_records(endpoint, name, [(f"k-{i}", rng.randbytes(size)) for i in range(records)])
    return name, arn


def _processed(mapping_uuid: str) -> float:
    total = 0.0
    for family in metrics.records_processed.collect():
        for s in family.samples:
            if s.labels.get("mapping") == mapping_uuid and s.name.endswith("_total"):
                total += s.value
    return total


async def run_poller(endpoint: str, arn: str, records: int, batch_size: int,
                     state: str) -> dict[str, float]:
    """CPU and wall seconds of the real service to process every record of the stream."""
    mapping = Mapping(uuid=f"bench-{uuid.uuid4().hex[:8]}", event_source_arn=arn,
                      function_name="noop", batch_size=batch_size,
                      starting_position="TRIM_HORIZON",
                      target=Target(type="python", handler="tests.functions.noop:handler",
                                    role_arn=ROLE_ARN))
    config = Config(mappings=(mapping,),
                    aws=AwsConfig(region=REGION,
                                  services={"kinesis": ServiceEndpoint(endpoint_url=endpoint)}),
                    state=StateConfig(path=state), metrics=MetricsConfig(port=0), tuning=TUNING)
    t0, c0 = time.perf_counter(), time.process_time()
    service = Service(config)
    await service.start()
    try:
        first = await wait_for(lambda: _processed(mapping.uuid), 600, interval=0.002,
                               message="the poller processed nothing")
        t1, c1 = time.perf_counter(), time.process_time()
        await wait_for(lambda: _processed(mapping.uuid) >= records, 600, interval=0.005,
                       message="the poller did not process every record")
        t2, c2 = time.perf_counter(), time.process_time()
        return {"cpu": c2 - c0, "wall": t2 - t0, "steady_cpu": c2 - c1, "steady_wall": t2 - t1,
                "steady_records": records - first}
    finally:
        await service.stop()


def _events(records: list[dict[str, Any]], shard: str, arn: str) -> dict[str, Any]:
    import base64

    return {"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r["PartitionKey"],
            "sequenceNumber": r["SequenceNumber"],
            "data": base64.b64encode(r["Data"]).decode("ascii"),
            "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{r['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ROLE_ARN,
        "awsRegion": REGION,
        "eventSourceARN": arn,
    } for r in records]}


async def run_naive(endpoint: str, stream: str, arn: str, shards: list[str], records: int,
                    batch_size: int) -> dict[str, float]:
    """The straightforward loop: aiobotocore get_records -> dicts -> json.dumps -> call."""
    from aiobotocore.session import get_session

    t0, c0 = time.perf_counter(), time.process_time()
    seen = 0
    steady: dict[str, float] = {}
    async with get_session().create_client("kinesis", region_name=REGION,
                                           endpoint_url=endpoint) as client:
        async def one(shard: str) -> int:
            count = 0
            iterator = (await client.get_shard_iterator(
                StreamName=stream, ShardId=shard,
                ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
            while iterator:
                response = await client.get_records(ShardIterator=iterator, Limit=batch_size)
                batch = response["Records"]
                if batch:
                    payload = json.dumps(_events(batch, shard, arn)).encode()
                    noop(json.loads(payload), None)
                    count += len(batch)
                    if not steady:  # like the poller's: from the first record processed on
                        steady.update(t=time.perf_counter(), c=time.process_time(),
                                      first=len(batch))
                elif response.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = response.get("NextShardIterator")
            return count

        seen = sum(await asyncio.gather(*(one(s) for s in shards)))
    if seen < records:
        raise RuntimeError(f"naive loop read {seen} of {records} records")
    t2, c2 = time.perf_counter(), time.process_time()
    return {"cpu": c2 - c0, "wall": t2 - t0, "steady_cpu": c2 - steady["c"],
            "steady_wall": t2 - steady["t"], "steady_records": records - steady["first"]}


def run(records: int = 10_000, size: int = 100, batch_size: int = 100,
        shards: int = 1) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")  # kinesalite accepts any credentials
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    from tests.infra.servers import start

    server = start("kinesalite")
    try:
        stream, arn = _fill(server.endpoint, shards, records, size)
        shard_ids = list_shard_ids(server.endpoint, stream)
        with tempfile.TemporaryDirectory() as tmp:
            naive = asyncio.run(run_naive(server.endpoint, stream, arn, shard_ids, records,
                                          batch_size))
            poller = asyncio.run(run_poller(server.endpoint, arn, records, batch_size,
                                            f"{tmp}/state.db"))
    finally:
        server.stop()
    results = {name: {**r, "cpu_us_per_record": 1e6 * r["cpu"] / records,
                      "records_per_s": records / r["wall"],
                      "steady_cpu_us_per_record":
                          1e6 * r["steady_cpu"] / max(r["steady_records"], 1)}
               for name, r in (("poller", poller), ("naive", naive))}
    return {"records": records, "size": size, "batch_size": batch_size, "shards": shards,
            "results": results,
            "ratio": (results["poller"]["steady_cpu_us_per_record"]
                      / results["naive"]["steady_cpu_us_per_record"]),
            "ratio_with_startup": results["poller"]["cpu"] / results["naive"]["cpu"]}


def report(result: dict[str, Any]) -> str:
    lines = [f"{result['records']:,} records x {result['size']:,} B, BatchSize "
             f"{result['batch_size']}, {result['shards']} shard(s), kinesalite",
             f"  {'path':<8}{'CPU s':>9}{'CPU us/record':>15}{'steady us/record':>18}"
             f"{'wall s':>9}{'records/s':>11}"]
    for name in ("poller", "naive"):
        r = result["results"][name]
        lines.append(f"  {name:<8}{r['cpu']:>9.3f}{r['cpu_us_per_record']:>15.1f}"
                     f"{r['steady_cpu_us_per_record']:>18.1f}"
                     f"{r['wall']:>9.2f}{r['records_per_s']:>11.0f}")
    lines.append(f"  ratio: poller CPU/record vs naive aiobotocore loop {result['ratio']:.2f}x "
                 f"in steady state (target <= 0.2x); {result['ratio_with_startup']:.2f}x "
                 "with start-up")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kinesis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    result = run(args.records, args.size, args.batch_size, args.shards)
    print(report(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
