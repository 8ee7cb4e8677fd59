"""Batcher benchmark: Kinesis GetRecords records -> Lambda invoke payload bytes.

Times, in one run and on the same input (a GetRecords response parsed by ``json.loads``,
``Data`` base64 of random bytes):

- cython: ``poller._fastbatch`` encode + build_payload
- twin: the pure-Python twin (``poller.batching.pure``) encode + build_payload
- dicts+json.dumps: one dict per record, then ``json.dumps`` of the whole event (the naive way)
- floor: base64-encoding the raw bytes and ``b','.join`` of them (less work than any encoder)

Run ``python -m bench.batcher [--records N] [--size BYTES] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import binascii
import gc
import json
import random
import time
from collections.abc import Callable
from typing import Any

from poller import batching

SHARD = "shardId-000000000000"
REGION = "eu-west-1"
STREAM_ARN = "arn:aws:kinesis:eu-west-1:111122223333:stream/bench"
ROLE_ARN = "arn:aws:iam::111122223333:role/bench-fn-role"
PATHS = ("cython", "twin", "dicts+json.dumps", "floor")


def make_input(records: int, size: int, seed: int = 1) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Raw record bytes and the GetRecords ``Records`` list a client would parse from the wire."""
    rng = random.Random(seed)
    blobs = [rng.randbytes(size) for _ in range(records)]
    seq = 49650000000000000000000000000000000000000000000000000000
    arrival = 1_700_000_000.0
    wire = []
    for i, blob in enumerate(blobs):
        seq += rng.randint(1, 10**12)
        arrival += rng.randint(0, 5) / 1000
        wire.append({
            "SequenceNumber": str(seq),
            "ApproximateArrivalTimestamp": round(arrival, 3),
            "Data": binascii.b2a_base64(blob, newline=False).decode("ascii"),
            "PartitionKey": f"user-{i % 1000}",
            "EncryptionType": "NONE",
        })
    response = json.dumps({"Records": wire, "MillisBehindLatest": 0, "NextShardIterator": "x"})
    raw: list[dict[str, Any]] = json.loads(response)["Records"]
    return blobs, raw


def naive_payload(raw: list[dict[str, Any]]) -> bytes:
    events = [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r["PartitionKey"],
            "sequenceNumber": r["SequenceNumber"],
            "data": r["Data"],
            "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"],
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD}:{r['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ROLE_ARN,
        "awsRegion": REGION,
        "eventSourceARN": STREAM_ARN,
    } for r in raw]
    return json.dumps({"Records": events}, separators=(",", ":")).encode()


def floor_payload(blobs: list[bytes]) -> bytes:
    b64 = binascii.b2a_base64
    return b",".join([b64(b, newline=False) for b in blobs])


def _best(fn: Callable[[], bytes], repeat: int) -> tuple[float, bytes]:
    out = fn()  # warm-up; also the output to compare
    best = float("inf")
    for _ in range(max(repeat, 1)):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0:
        return None
    return b / a


def run(records: int = 10_000, size: int = 1024, repeat: int = 5) -> dict[str, Any]:
    """Time the four paths; ``ratios`` are speed-ups of the Cython path (>1 = Cython faster)."""
    blobs, raw = make_input(records, size)
    impls: dict[str, Any] = {"twin": batching.pure}
    if batching.extension is not None:
        impls["cython"] = batching.extension

    def encoder_path(impl: Any) -> Callable[[], bytes]:
        enc = impl.KinesisEncoder(SHARD, REGION, STREAM_ARN, ROLE_ARN)
        return lambda: impl.build_payload(enc.encode(raw))  # type: ignore[no-any-return]

    fns: dict[str, Callable[[], bytes]] = {
        name: encoder_path(impl) for name, impl in impls.items()}
    fns["dicts+json.dumps"] = lambda: naive_payload(raw)
    fns["floor"] = lambda: floor_payload(blobs)

    data_mb = records * size / 1e6
    results: dict[str, dict[str, float] | None] = {}
    outputs: dict[str, bytes] = {}
    for name in PATHS:
        if name not in fns:
            results[name] = None
            continue
        seconds, outputs[name] = _best(fns[name], repeat)
        results[name] = {
            "seconds": seconds,
            "ms_per_10k": seconds * 1000 * 10_000 / records if records else 0.0,
            "mb_per_s": data_mb / seconds if seconds > 0 else float("inf"),
        }

    def secs(name: str) -> float | None:
        r = results.get(name)
        return r["seconds"] if r else None

    encoded = [outputs[n] for n in ("cython", "twin", "dicts+json.dumps") if n in outputs]
    return {
        "records": records,
        "size": size,
        "repeat": repeat,
        "implementation": batching.IMPLEMENTATION,
        "payload_bytes": len(outputs["twin"]),
        "identical": all(o == encoded[0] for o in encoded),
        "results": results,
        "ratios": {
            "cython_vs_twin": _ratio(secs("cython"), secs("twin")),
            "cython_vs_dicts_json": _ratio(secs("cython"), secs("dicts+json.dumps")),
            "cython_vs_floor": _ratio(secs("cython"), secs("floor")),
        },
    }


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    width = int(spec.split(".")[0] or 0)
    return "n/a".rjust(width) if value is None else format(value, spec) + suffix


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['records']:,} records x {result['size']:,} B  "
        f"(payload {result['payload_bytes'] / 1e6:.1f} MB, best of {result['repeat']}, "
        f"outputs identical: {result['identical']})",
        f"  {'path':<18}{'ms per 10k':>12}{'MB/s data':>12}",
    ]
    for name in PATHS:
        r = result["results"][name]
        lines.append(f"  {name:<18}{_fmt(r and r['ms_per_10k'], '12.2f')}"
                     f"{_fmt(r and r['mb_per_s'], '12.1f')}")
    ratios = result["ratios"]
    lines.append(
        f"  ratio: cython vs twin {_fmt(ratios['cython_vs_twin'], '.1f', 'x')}, "
        f"cython vs dicts+json.dumps {_fmt(ratios['cython_vs_dicts_json'], '.1f', 'x')}, "
        f"cython vs floor {_fmt(ratios['cython_vs_floor'], '.2f', 'x')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batcher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--size", type=int, action="append",
                        help="record size in bytes (repeatable; default 1024 and 100)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    for size in args.size or [1024, 100]:
        print(report(run(args.records, size, args.repeat)))


if __name__ == "__main__":
    main()
