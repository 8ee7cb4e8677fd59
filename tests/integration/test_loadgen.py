"""The load generator puts exactly the records it is asked for into real Kinesis servers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

from poller.config_model import AwsConfig
from poller.loadgen import EARLY_SECONDS, run_loadgen
from tests.helpers import KinesisEndpoint, create_stream, list_shard_ids, read_shard, unique_name

ROOT = Path(__file__).resolve().parents[2]


def all_records(endpoint: str, stream: str) -> list[dict[str, object]]:
    return [r for shard in list_shard_ids(endpoint, stream)
            for r in read_shard(endpoint, stream, shard)]


async def test_puts_every_record_once_at_a_rate(kinesis_endpoint: KinesisEndpoint) -> None:
    endpoint = kinesis_endpoint.endpoint
    stream = unique_name("load")
    arn = await asyncio.to_thread(create_stream, endpoint, stream, 2)
    count, rate = 300, 600.0

    result = await run_loadgen(arn, rate=rate, count=count, size=120,
                               aws=AwsConfig(endpoint_url=endpoint), progress=False,
                               partition_keys=7)

    assert result.sent == count
    # pacing never runs ahead of the schedule (record i is due at i / rate)
    assert result.elapsed >= (count - 1) / rate - EARLY_SECONDS
    records = await asyncio.to_thread(all_records, endpoint, stream)
    assert len(records) == count
    datas = [json.loads(r["Data"]) for r in records]  # type: ignore[arg-type]
    assert sorted(d["seq"] for d in datas) == list(range(count))
    assert {len(r["Data"]) for r in records} == {120}  # type: ignore[arg-type]
    keys = Counter(r["PartitionKey"] for r in records)
    assert set(keys) == {f"pk-{i}" for i in range(7)}
    assert max(keys.values()) - min(keys.values()) <= 1


async def test_unpaced_run_splits_calls_at_500_records(moto_endpoint: str) -> None:
    stream = unique_name("load")
    arn = await asyncio.to_thread(create_stream, moto_endpoint, stream, 1)
    result = await run_loadgen(arn, rate=0, count=1234, size=16,
                               aws=AwsConfig(endpoint_url=moto_endpoint), progress=False)
    assert result.sent == 1234
    assert result.calls >= 3  # 500 + 500 + 234
    records = await asyncio.to_thread(all_records, moto_endpoint, stream)
    assert len(records) == 1234


async def test_calls_stay_under_5_mb(moto_endpoint: str) -> None:
    stream = unique_name("load")
    arn = await asyncio.to_thread(create_stream, moto_endpoint, stream, 1)
    result = await run_loadgen(arn, rate=0, count=30, size=400_000,
                               aws=AwsConfig(endpoint_url=moto_endpoint), progress=False)
    assert result.sent == 30
    assert result.calls >= 3  # 13 records of 400 KB fit in 5 MB
    records = await asyncio.to_thread(all_records, moto_endpoint, stream)
    assert sorted(json.loads(r["Data"])["seq"] for r in records) == list(range(30))  # type: ignore[arg-type]


async def test_command_line(moto_endpoint: str) -> None:
    stream = unique_name("load")
    arn = await asyncio.to_thread(create_stream, moto_endpoint, stream, 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "poller.loadgen", "--stream", arn, "--rate", "0", "--count", "40",
        "--size", "10", "--endpoint-url", moto_endpoint, "--no-progress",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["sent"] == 40
    records = await asyncio.to_thread(all_records, moto_endpoint, stream)
    assert len(records) == 40
    assert {len(r["Data"]) for r in records} == {10}  # type: ignore[arg-type]


async def test_command_line_reports_a_missing_stream(moto_endpoint: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "poller.loadgen", "--stream",
        f"arn:aws:kinesis:us-east-1:123456789012:stream/{unique_name('nope')}", "--count", "1",
        "--endpoint-url", moto_endpoint, "--no-progress",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "ResourceNotFoundException" in stderr.decode()


async def test_concurrent_calls_still_put_every_record(kinesalite_endpoint: str) -> None:
    stream = unique_name("load")
    arn = await asyncio.to_thread(create_stream, kinesalite_endpoint, stream, 2)
    result = await run_loadgen(arn, rate=0, count=3000, size=50,
                               aws=AwsConfig(endpoint_url=kinesalite_endpoint), progress=False,
                               max_in_flight=4)
    assert result.sent == 3000
    records = await asyncio.to_thread(all_records, kinesalite_endpoint, stream)
    assert sorted(json.loads(r["Data"])["seq"] for r in records) == list(range(3000))  # type: ignore[arg-type]


async def test_one_call_in_flight_keeps_the_order(kinesalite_endpoint: str) -> None:
    stream = unique_name("load")
    arn = await asyncio.to_thread(create_stream, kinesalite_endpoint, stream, 1)
    await run_loadgen(arn, rate=0, count=1500, size=64,
                      aws=AwsConfig(endpoint_url=kinesalite_endpoint), progress=False)
    records = await asyncio.to_thread(all_records, kinesalite_endpoint, stream)
    assert [json.loads(r["Data"])["seq"] for r in records] == list(range(1500))  # type: ignore[arg-type]
