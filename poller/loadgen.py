"""Load generator: puts records into a Kinesis stream at a steady rate.

``poller loadgen --stream ARN --rate 1000 --count 100000 --size 1024`` (against any Kinesis
endpoint: AWS, kinesalite, kinesis-local, LocalStack, moto).

Record *i* is due at ``start + i / rate`` (deadlines, so pauses do not accumulate drift); whatever
is due (or due within 20 ms) is sent in PutRecords calls of at most 500 records / 5 MB. One call
is in flight at a time by default, so records land in the order they were made (per partition key
too); ``max_in_flight`` > 1 is faster but lets calls overtake each other (and moto server loses
records under concurrent puts to one shard). Entries a call reports as failed
(``FailedRecordCount``) are sent again, after the rest of their call. Each record's data is a
JSON object of exactly ``size`` bytes (``{"seq":…,"ts":…,"pad":"…"}``, random padding; below the
JSON minimum, ``size`` random hex characters) so filters and demo functions can read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from poller.awsclients import AwsClients, error_code, is_retryable
from poller.config_model import AwsConfig

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
EARLY_SECONDS = 0.02  # records due this soon go out with the current call (fewer, larger calls)
BACKOFF_BASE = 0.05
BACKOFF_MAX = 2.0


@dataclass(frozen=True, slots=True)
class LoadgenResult:
    sent: int  # records accepted by the stream
    retried: int  # record puts repeated after a failed entry or a throttled call
    calls: int  # PutRecords calls made
    elapsed: float  # seconds

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def make_data(seq: int, size: int, rng: random.Random) -> bytes:
    head = f'{{"seq":{seq},"ts":{time.time():.3f},"pad":"'
    pad = size - len(head) - 2
    if pad < 0:
        return rng.randbytes((size + 1) // 2).hex()[:size].encode()
    return (head + rng.randbytes((pad + 1) // 2).hex()[:pad] + '"}').encode()


def stream_name_from_arn(arn: str) -> tuple[str, str | None]:
    """(stream name, region) from a stream ARN; a bare name is accepted too."""
    parts = arn.split(":", 5)
    if parts[0] != "arn":
        return arn, None
    if len(parts) != 6 or parts[2] != "kinesis" or not parts[5].startswith("stream/"):
        raise ValueError(f"not a Kinesis stream ARN: {arn!r}")
    return parts[5].split("/", 2)[1], parts[3] or None


class _Counters:
    def __init__(self) -> None:
        self.sent = 0
        self.retried = 0
        self.calls = 0


async def _put(client: Any, stream: str, entries: list[dict[str, Any]], counters: _Counters,
               progress: Any) -> None:
    pending = entries
    delay = BACKOFF_BASE
    while pending:
        counters.calls += 1
        try:
            response = await client.put_records(StreamName=stream, Records=pending)
        except ClientError as e:
            if not is_retryable(e):
                raise
            counters.retried += len(pending)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)
            continue
        failed = [entry for entry, result in zip(pending, response["Records"], strict=True)
                  if "SequenceNumber" not in result]
        done = len(pending) - len(failed)
        counters.sent += done
        if progress is not None:
            progress.update(done)
        if failed:
            counters.retried += len(failed)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)
        pending = failed


def _harvest(tasks: set[asyncio.Task[None]]) -> None:
    """Drops finished puts from ``tasks``, re-raising the first failure."""
    for task in [t for t in tasks if t.done()]:
        tasks.discard(task)
        task.result()


async def run_loadgen(
    stream_arn: str,
    rate: float,
    count: int,
    size: int,
    aws: AwsConfig,
    progress: bool = True,
    partition_keys: int = 100,
    max_in_flight: int = 1,
) -> LoadgenResult:
    """Put ``count`` records of ``size`` bytes at ``rate`` records/s (``rate`` <= 0: as fast
    as possible), partition keys cycling over ``partition_keys`` values."""
    if count < 0 or size < 1 or partition_keys < 1 or max_in_flight < 1:
        raise ValueError("count must be >= 0, size, partition_keys and max_in_flight >= 1")
    stream, region = stream_name_from_arn(stream_arn)
    rng = random.Random()
    counters = _Counters()
    bar: Any = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=count, unit="rec", file=sys.stderr, dynamic_ncols=True)
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    try:
        async with AwsClients(aws) as clients:
            client = await clients.client("kinesis", region)
            try:
                i = 0
                while i < count:
                    now = time.monotonic()
                    due = count if rate <= 0 else min(
                        count, int((now - start + EARLY_SECONDS) * rate) + 1)
                    if due <= i:
                        await asyncio.sleep(start + i / rate - now)
                        continue
                    entries: list[dict[str, Any]] = []
                    batch_bytes = 0
                    while i < due and len(entries) < MAX_RECORDS_PER_CALL:
                        key = f"pk-{i % partition_keys}"
                        data = make_data(i, size, rng)
                        if entries and batch_bytes + len(data) + len(key) > MAX_BYTES_PER_CALL:
                            break
                        entries.append({"Data": data, "PartitionKey": key})
                        batch_bytes += len(data) + len(key)
                        i += 1
                    while len(tasks) >= max_in_flight:
                        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                        _harvest(tasks)
                    tasks.add(asyncio.create_task(_put(client, stream, entries, counters, bar)))
                    # let in-flight calls progress even when the next batch is due at once
                    await asyncio.sleep(0)
                    _harvest(tasks)
                while tasks:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    _harvest(tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if bar is not None:
            bar.close()
    return LoadgenResult(counters.sent, counters.retried, counters.calls,
                         time.monotonic() - start)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``loadgen`` to an argparse sub-command set (``poller loadgen``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "loadgen", help="put records into a Kinesis stream at a steady rate",
        description="Put records into a Kinesis stream at a steady rate.")
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stream", required=True, help="stream ARN (or name)")
    p.add_argument("--rate", type=float, default=100.0, help="records/s; 0 = as fast as possible")
    p.add_argument("--count", type=int, default=1000, help="records to put")
    p.add_argument("--size", type=int, default=256, help="bytes of data per record")
    p.add_argument("--partition-keys", type=int, default=100, help="distinct partition keys")
    p.add_argument("--concurrency", type=int, default=1,
                   help="PutRecords calls in flight (>1: faster, records may land out of order)")
    p.add_argument("--endpoint-url", help="Kinesis endpoint (kinesalite, LocalStack, ...)")
    p.add_argument("--region", help="region (default: the ARN's, else us-east-1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    _, arn_region = stream_name_from_arn(args.stream)
    aws = AwsConfig(region=args.region or arn_region or "us-east-1",
                    endpoint_url=args.endpoint_url)
    stream = args.stream
    if args.region and stream.startswith("arn:"):
        parts = stream.split(":", 5)
        parts[3] = args.region
        stream = ":".join(parts)
    try:
        result = asyncio.run(run_loadgen(stream, args.rate, args.count, args.size, aws,
                                         progress=not args.no_progress,
                                         partition_keys=args.partition_keys,
                                         max_in_flight=args.concurrency))
    except ClientError as e:
        print(f"loadgen: {error_code(e)}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": result.sent, "retried": result.retried, "calls": result.calls,
                      "elapsed_seconds": round(result.elapsed, 3),
                      "records_per_second": round(result.rate, 1)}))
    return 0


def main_loadgen(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="poller loadgen")
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_loadgen())
