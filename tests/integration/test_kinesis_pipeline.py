"""The spine end to end: a real Kinesis server -> poller -> function host (Lambda Invoke API via
aiobotocore) -> checkpoints and on-failure destinations on real servers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from poller.sources.shards import ShardCoordinator
from tests.helpers import (
    KinesisEndpoint,
    b64,
    create_queue,
    create_stream,
    list_shard_ids,
    make_boto3_client,
    put_records,
    read_shard,
    receive_all,
    unique_name,
    wait_for,
)
from tests.integration.pipeline_harness import (
    Recorder,
    config_for,
    counter,
    function_host,
    mapping_for,
    metrics,
    running,
)

KINESIS_RECORD_KEYS = ["kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                       "invokeIdentityArn", "awsRegion", "eventSourceARN"]


async def test_every_record_arrives_once_in_shard_order_in_aws_event_shape(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("order")
    arn = create_stream(ep, stream, shards=2)
    sent = put_records(ep, stream, [(f"key-{i % 7}", f"record-{i}") for i in range(60)])
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=7)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 60, 60, message="not all records arrived")
    assert sorted(s.data for s in rec.seen) == sorted(f"record-{i}".encode() for i in range(60))
    assert len(rec.seen) == 60, "a record was delivered twice"
    for shard in {s for s, _ in sent}:
        expected = [seq for sh, seq in sent if sh == shard]
        assert [s.seq for s in rec.seen if s.shard == shard] == expected
    assert max(len(e["Records"]) for e in rec.events) <= 7
    event = rec.events[0]
    assert list(event) == ["Records"]
    record = event["Records"][0]
    assert list(record) == KINESIS_RECORD_KEYS
    assert list(record["kinesis"]) == ["kinesisSchemaVersion", "partitionKey", "sequenceNumber",
                                       "data", "approximateArrivalTimestamp"]
    assert record["kinesis"]["kinesisSchemaVersion"] == "1.0"
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventVersion"] == "1.0"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["invokeIdentityArn"].startswith("arn:aws:iam::")
    shard, seq = record["eventID"].split(":")
    assert seq == record["kinesis"]["sequenceNumber"] and shard.startswith("shardId-")
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float | int)
    first = next(i for i, (sh, sq) in enumerate(sent) if sq == seq)
    assert record["kinesis"]["data"] == b64(f"record-{first}")


async def test_restart_resumes_after_the_checkpoint_without_loss_or_skips(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("restart")
    arn = create_stream(ep, stream, shards=1)
    put_records(ep, stream, [("k", f"a-{i}") for i in range(25)])
    rec = Recorder()
    state = tmp_path / "state.db"
    async with function_host(rec) as host:
        config = config_for(mapping_for(arn, batch_size=5), ep, host.endpoint, state)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 25, 60)
        first_run = len(rec.seen)
        await asyncio.to_thread(put_records, ep, stream, [("k", f"b-{i}") for i in range(25)])
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= first_run + 25, 60)
    assert first_run == 25
    data = [s.data.decode() for s in rec.seen]
    assert data == [f"a-{i}" for i in range(25)] + [f"b-{i}" for i in range(25)]


async def test_poison_record_is_isolated_by_bisect_and_sent_to_sqs(
        kinesis_endpoint: KinesisEndpoint, moto_endpoint: str, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("poison")
    arn = create_stream(ep, stream, shards=1)
    queue_url, queue_arn = create_queue(moto_endpoint, unique_name("dlq"))
    sent = put_records(ep, stream, [(f"k{i}", "poison" if i == 13 else f"ok-{i}")
                                    for i in range(20)])

    def behave(event: dict[str, Any], batch: list[Any]) -> None:
        if any(s.data == b"poison" for s in batch):
            raise RuntimeError("poison record")

    rec = Recorder(behave=behave)
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=20, bisect_batch_on_function_error=True,
                              maximum_retry_attempts=1, on_failure_destination=queue_arn)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db",
                                      moto=moto_endpoint)):
            await wait_for(lambda: len(rec.ok) >= 19, 60)
            messages = await asyncio.to_thread(receive_all, moto_endpoint, queue_url, 1)
            await wait_for(lambda: counter(metrics.records_onfailure_delivered,
                                           mapping.uuid) == 1, 10)
    assert sorted(rec.ok_data()) == sorted(f"ok-{i}".encode() for i in range(20) if i != 13)
    doc = json.loads(messages[0]["Body"])
    assert list(doc) == ["requestContext", "responseContext", "version", "timestamp",
                         "KinesisBatchInfo"]
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 2
    assert doc["requestContext"]["functionArn"] == (
        "arn:aws:lambda:us-east-1:000000000000:function:recorder"
        if ":000000000000:" in arn else doc["requestContext"]["functionArn"])
    assert doc["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                      "functionError": "Unhandled"}
    assert doc["version"] == "1.0"
    assert doc["timestamp"].endswith("Z") and len(doc["timestamp"]) == 24
    info = doc["KinesisBatchInfo"]
    assert info["shardId"] == sent[13][0]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sent[13][1]
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert list(info) == ["shardId", "startSequenceNumber", "endSequenceNumber",
                          "approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord",
                          "batchSize", "streamArn"]


async def test_parallelization_factor_keeps_per_key_order(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("pf")
    arn = create_stream(ep, stream, shards=1)
    records = [(f"key-{i % 8}", f"{i % 8}:{i // 8}") for i in range(160)]
    put_records(ep, stream, records)
    rec = Recorder(delay=0.02)
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=5, parallelization_factor=4)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 160, 60)
    assert len(rec.seen) == 160
    for key in range(8):
        order = [int(s.data.decode().split(":")[1]) for s in rec.seen
                 if s.key == f"key-{key}"]
        assert order == list(range(20)), f"key-{key} out of order: {order}"
    assert rec.max_in_flight > 1, "ParallelizationFactor 4 never ran two batches at once"


async def test_shard_split_mid_stream_reads_parents_before_children(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("split")
    arn = create_stream(ep, stream, shards=1)
    kinesis = make_boto3_client("kinesis", ep)
    put_records(ep, stream, [(f"k{i}", f"before-{i}") for i in range(30)])
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=10)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(rec.ok) >= 30, 60)
            parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
            start, end = (int(x) for x in (parent["HashKeyRange"]["StartingHashKey"],
                                           parent["HashKeyRange"]["EndingHashKey"]))
            await asyncio.to_thread(kinesis.split_shard, StreamName=stream,
                                    ShardToSplit=parent["ShardId"],
                                    NewStartingHashKey=str((start + end) // 2))
            await wait_for(lambda: kinesis.describe_stream_summary(StreamName=stream)[
                "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 30)
            await asyncio.to_thread(put_records, ep, stream,
                                    [(f"k{i}", f"after-{i}") for i in range(30)])
            await wait_for(lambda: len(rec.ok) >= 60, 60, message="children not read")
            stale = [labels for family in metrics.seconds_since_last_poll.collect()
                     for sample in family.samples
                     if (labels := sample.labels)["mapping"] == mapping.uuid]
    assert parent["ShardId"] not in {labels["shard"] for labels in stale}, (
        "an ended shard still reports seconds since its last poll")
    assert len(rec.seen) == 60
    shards = {s.shard for s in rec.seen}
    assert len(shards) >= 2
    parent_id = parent["ShardId"]
    last_parent = max(i for i, s in enumerate(rec.seen) if s.shard == parent_id)
    first_child = min(i for i, s in enumerate(rec.seen) if s.shard != parent_id)
    assert last_parent < first_child
    assert all(s.data.startswith(b"after-") for s in rec.seen if s.shard != parent_id)


async def test_throttled_invokes_retry_without_consuming_attempts(
        kinesis_endpoint: KinesisEndpoint, moto_endpoint: str, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("throttle")
    arn = create_stream(ep, stream, shards=2)
    _url, queue_arn = create_queue(moto_endpoint, unique_name("dlq"))
    put_records(ep, stream, [(f"k{i}", f"t-{i}") for i in range(80)])
    rec = Recorder(delay=0.03)
    async with function_host(rec, concurrency=1) as host:
        mapping = mapping_for(arn, batch_size=5, parallelization_factor=4,
                              maximum_retry_attempts=0, on_failure_destination=queue_arn)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db",
                                      moto=moto_endpoint)):
            await wait_for(lambda: len(rec.ok) >= 80, 90)
    assert sorted(rec.ok_data()) == sorted(f"t-{i}".encode() for i in range(80))
    assert counter(metrics.throttles, mapping.uuid, where="invoke") > 0
    assert counter(metrics.records_onfailure_delivered, mapping.uuid) == 0
    assert counter(metrics.records_dropped, mapping.uuid) == 0


async def test_partial_batch_response_retries_from_the_reported_record(
        kinesis_endpoint: KinesisEndpoint, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("partial")
    arn = create_stream(ep, stream, shards=1)
    put_records(ep, stream, [("k", f"p-{i}") for i in range(10)])
    failed_once: set[str] = set()

    def behave(event: dict[str, Any], batch: list[Any]) -> dict[str, Any]:
        for s in batch:
            if s.data in (b"p-4", b"p-7") and s.seq not in failed_once:
                failed_once.add(s.seq)
                return {"batchItemFailures": [{"itemIdentifier": s.seq}]}
        return {"batchItemFailures": []}

    rec = Recorder(behave=behave)
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=10,
                              function_response_types=("ReportBatchItemFailures",))
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")):
            await wait_for(lambda: len(failed_once) == 2 and
                           counter(metrics.records_processed, mapping.uuid) >= 10, 60)
    batches = [[base64_data(r) for r in e["Records"]] for e in rec.events]
    assert batches == [[f"p-{i}" for i in range(10)], [f"p-{i}" for i in range(4, 10)],
                       [f"p-{i}" for i in range(7, 10)]]


def base64_data(record: dict[str, Any]) -> str:
    import base64

    return base64.b64decode(record["kinesis"]["data"]).decode()


async def test_s3_destination_gets_the_payload_under_aws_key_layout(
        kinesis_endpoint: KinesisEndpoint, moto_endpoint: str, tmp_path: Path) -> None:
    ep = kinesis_endpoint.endpoint
    stream = unique_name("s3dest")
    arn = create_stream(ep, stream, shards=1)
    bucket = unique_name("bucket")
    s3 = make_boto3_client("s3", moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    sent = put_records(ep, stream, [("k", "always-fails")])

    def behave(event: dict[str, Any], batch: list[Any]) -> None:
        raise ValueError("nope")

    rec = Recorder(behave=behave)
    async with function_host(rec) as host:
        mapping = mapping_for(arn, maximum_retry_attempts=0,
                              on_failure_destination=f"arn:aws:s3:::{bucket}")
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db",
                                      moto=moto_endpoint)):
            keys = await wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(
                Bucket=bucket).get("Contents", [])], 30)
    (key,) = keys
    shard = sent[0][0]
    assert key.startswith(f"aws/lambda/{mapping.uuid}/{shard}/")
    import re

    assert re.fullmatch(rf"aws/lambda/{mapping.uuid}/{shard}/\d{{4}}/\d\d/\d\d/"
                        r"\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d-[0-9a-f-]{36}", key), key
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert doc["requestContext"]["approximateInvokeCount"] == 1
    payload = json.loads(doc["payload"])
    assert [r["kinesis"]["data"] for r in payload["Records"]] == [b64("always-fails")]


@pytest.mark.parametrize("position", ["LATEST", "AT_TIMESTAMP"])
async def test_starting_position_skips_older_records(
        kinesalite_endpoint: str, tmp_path: Path, position: str) -> None:
    ep = kinesalite_endpoint
    stream = unique_name("start")
    arn = create_stream(ep, stream, shards=1)
    put_records(ep, stream, [("k", "old")])
    expected = [b"new"]
    kw: dict[str, Any] = {"starting_position": position}
    if position == "AT_TIMESTAMP":
        # kinesalite never answers AT_TIMESTAMP past its last record, so one record follows it
        (old,) = read_shard(ep, stream, list_shard_ids(ep, stream)[0])
        kw["starting_position_timestamp"] = old["ApproximateArrivalTimestamp"].timestamp() + 0.001
        await wait_for(lambda: time.time() > kw["starting_position_timestamp"] + 0.002, 5)
        put_records(ep, stream, [("k", "after-timestamp")])
        expected.insert(0, b"after-timestamp")
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, **kw)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")) as svc:
            runner = svc.mappings[mapping.uuid]
            assert isinstance(runner, ShardCoordinator)
            readers = await wait_for(lambda: runner.readers, 30)
            await wait_for(lambda: all(r.polls for r, _s, _t in readers.values()), 10)
            assert counter(metrics.records_polled, mapping.uuid) == len(expected) - 1
            await asyncio.to_thread(put_records, ep, stream, [("k", "new")])
            await wait_for(lambda: len(rec.ok) >= len(expected), 30)
    assert [s.data for s in rec.seen] == expected


@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"foo": 123}]},
    {"batchItemFailures": [{"itemIdentifier": "123"}]},
], ids=["empty", "null", "missing", "unknown"])
async def test_malformed_partial_response_fails_the_whole_batch(
        kinesalite_endpoint: str, moto_endpoint: str, tmp_path: Path,
        response: dict[str, Any]) -> None:
    ep = kinesalite_endpoint
    stream = unique_name("malformed")
    arn = create_stream(ep, stream, shards=1)
    queue_url, queue_arn = create_queue(moto_endpoint, unique_name("dlq"))
    put_records(ep, stream, [("k", f"m-{i}") for i in range(4)])
    rec = Recorder(behave=lambda event, batch: response)
    async with function_host(rec) as host:
        mapping = mapping_for(arn, function_response_types=("ReportBatchItemFailures",),
                              maximum_retry_attempts=2, on_failure_destination=queue_arn)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db",
                                      moto=moto_endpoint)):
            messages = await asyncio.to_thread(receive_all, moto_endpoint, queue_url, 1)
    assert [len(e["Records"]) for e in rec.events] == [4, 4, 4]
    doc = json.loads(messages[0]["Body"])
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    assert doc["responseContext"]["functionError"] is None
    assert doc["KinesisBatchInfo"]["batchSize"] == 4
    assert counter(metrics.bad_responses, mapping.uuid) == 3


async def test_deleted_stream_puts_the_mapping_in_problem_state_without_a_crash_loop(
        kinesalite_endpoint: str, tmp_path: Path) -> None:
    ep = kinesalite_endpoint
    stream = unique_name("deleted")
    arn = create_stream(ep, stream, shards=1)
    put_records(ep, stream, [("k", "only")])
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn)
        async with running(config_for(mapping, ep, host.endpoint, tmp_path / "s.db")) as svc:
            await wait_for(lambda: len(rec.ok) == 1, 30)
            assert svc.readiness()[0]
            await asyncio.to_thread(make_boto3_client("kinesis", ep).delete_stream,
                                    StreamName=stream)
            runner = svc.mappings[mapping.uuid]
            await wait_for(lambda: runner.status.state == "Problem", 30)
            assert "ResourceNotFound" in runner.status.reason
            ready, detail = svc.readiness()
            assert not ready and "Problem" in detail
            errors = counter(metrics.poll_errors, mapping.uuid)
            started = time.monotonic()
            await wait_for(lambda: counter(metrics.poll_errors, mapping.uuid) >= errors + 3, 20)
            elapsed = time.monotonic() - started
    # exponential backoff from 1 s (with jitter): three more failures take at least 3.5 s
    assert elapsed > 2, f"3 retries against a deleted stream in {elapsed:.2f} s: no backoff"
