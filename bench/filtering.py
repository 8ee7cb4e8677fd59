"""Filtering benchmark: Kinesis GetRecords records (JSON data, base64) through FilterCriteria and
the batcher into invoke payloads, against the same path with no filter, in one run.

- no filter: encode + take_batch + build_payload (the reader-to-payload path without filters)
- 3 filters (data): three patterns, two reading ``data`` (base64 decode + JSON parse per record)
- 1 filter (metadata): one partitionKey pattern (``data`` never decoded)

Rates count input records per second. Run ``python -m bench.filtering [--records N]``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import gc
import json
import random
import time
from collections.abc import Callable
from typing import Any

from poller import batching
from poller.filtering import FilterSet
from poller.sources.kinesis import filter_records

PATTERNS = (
    '{"data": {"type": ["order"], "amount": [{"numeric": [">", 500]}]}}',
    '{"data": {"region": [{"prefix": "eu-"}], "status": [{"anything-but": ["cancelled"]}]}}',
    '{"partitionKey": [{"prefix": "vip-"}]}',
)
METADATA_ONLY = ('{"partitionKey": [{"prefix": "vip-"}]}',)


def make_input(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    seq = 49650000000000000000000000000000000000000000000000000000
    out = []
    for i in range(n):
        doc = {"type": rng.choice(["order", "refund", "view"]), "amount": rng.randint(0, 1000),
               "region": rng.choice(["eu-west-1", "us-east-1", "ap-south-1"]),
               "status": rng.choice(["new", "paid", "cancelled"]),
               "user": f"u{rng.randint(0, 9999)}",
               "items": [rng.randint(1, 99) for _ in range(5)], "note": "x" * 60}
        out.append({"SequenceNumber": str(seq + i),
                    "ApproximateArrivalTimestamp": 1.7e9 + i / 1000,
                    "Data": base64.b64encode(json.dumps(doc).encode()).decode(),
                    "PartitionKey": ("vip-" if i % 50 == 0 else "k-") + str(i % 997)})
    return out


def run_path(raw: list[dict[str, Any]], filters: FilterSet | None, chunk: int = 1000,
             batch_size: int = 100) -> tuple[int, int]:
    """(records kept, payload bytes) for ``raw`` read ``chunk`` records per GetRecords."""
    encoder = batching.KinesisEncoder("shardId-000000000000", "eu-west-1",
                                      "arn:aws:kinesis:eu-west-1:1:stream/b",
                                      "arn:aws:iam::1:role/r")
    buffer: collections.deque[Any] = collections.deque()
    kept = total = 0
    for i in range(0, len(raw), chunk):
        part = raw[i:i + chunk]
        if filters is None:
            records = encoder.encode(part)
        else:
            records, _ = filter_records(filters, encoder, part)
            records = [r for r in records if not r.done]
        buffer.extend(records)
        kept += len(records)
        while buffer:
            batch = batching.take_batch(buffer, batch_size, batching.MAX_PAYLOAD_BYTES)
            total += len(batching.build_payload(batch))
    return kept, total


def timed(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    raw = make_input(args.records)
    paths = {"no filter": None, "3 filters (data)": FilterSet(PATTERNS),
             "1 filter (metadata)": FilterSet(METADATA_ONLY)}
    base = None
    print(f"{args.records} records, batcher: {batching.IMPLEMENTATION}")
    for name, fs in paths.items():
        kept, _ = run_path(raw, fs)

        def one(fs: FilterSet | None = fs) -> None:
            run_path(raw, fs)
        seconds = timed(one, args.repeat)
        rate = args.records / seconds
        base = base or rate
        print(f"{name:22s} {rate:12,.0f} records/s  kept {kept:7d}  ratio {rate / base:5.2f}")


if __name__ == "__main__":
    main()
