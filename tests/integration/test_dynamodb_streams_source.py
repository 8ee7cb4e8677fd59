"""DynamoDB Streams source end to end on DynamoDB Local (AWS's own): the real service, the
function host over the Lambda Invoke API, moto for the on-failure destination."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from poller import service as service_module
from poller.awsjson import AwsError
from poller.sources.dynamodb_streams import DynamoDBStreamsApi
from poller.sources.shards import ShardCoordinator
from tests.helpers import create_queue, make_boto3_client, receive_all, unique_name, wait_for
from tests.integration.pipeline_harness import counter, metrics, running
from tests.integration.source_harness import (
    FAST,
    EventRecorder,
    function_host,
    source_config,
    source_mapping,
)


def create_table(endpoint: str, view: str = "NEW_AND_OLD_IMAGES") -> tuple[str, str]:
    """A table with a stream; returns ``(table name, stream ARN)``."""
    name = unique_name("tbl")
    ddb = make_boto3_client("dynamodb", endpoint)
    resp = ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    return name, resp["TableDescription"]["LatestStreamArn"]


def put(endpoint: str, table: str, pk: str, **attrs: str) -> None:
    item = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}}
    make_boto3_client("dynamodb", endpoint).put_item(TableName=table, Item=item)


def pks(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]


async def test_event_shape_and_shard_order(dynamodb_local_endpoint: str, tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    ddb = make_boto3_client("dynamodb", ep)
    put(ep, table, "a", status="NEW")
    put(ep, table, "a", status="SHIPPED")
    ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
    for i in range(10):
        put(ep, table, f"k{i}")
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON", batch_size=4)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 13, 30)
    seen = rec.seen()
    assert [r["eventName"] for r in seen[:3]] == ["INSERT", "MODIFY", "REMOVE"]
    assert pks(seen) == ["a", "a", "a"] + [f"k{i}" for i in range(10)]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in seen]
    assert seqs == sorted(seqs)
    modify = seen[1]
    assert list(modify) == ["eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
                            "dynamodb", "eventSourceARN"]
    assert modify["eventVersion"] == "1.1" and modify["eventSource"] == "aws:dynamodb"
    assert modify["eventSourceARN"] == arn and modify["awsRegion"] == arn.split(":")[3]
    d = modify["dynamodb"]
    assert list(d) == ["ApproximateCreationDateTime", "Keys", "NewImage", "OldImage",
                       "SequenceNumber", "SizeBytes", "StreamViewType"]
    assert isinstance(d["ApproximateCreationDateTime"], int)
    assert d["NewImage"]["status"] == {"S": "SHIPPED"} and d["OldImage"]["status"] == {"S": "NEW"}
    assert d["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert "NewImage" not in seen[2]["dynamodb"] and "OldImage" in seen[2]["dynamodb"]
    assert all(len(batch) <= 4 for batch in rec.events)


async def test_partial_batch_response_retries_from_the_reported_record(
        dynamodb_local_endpoint: str, tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    for i in range(6):
        put(ep, table, f"p{i}")
    failed: list[str] = []

    def behave(records: list[dict[str, Any]]) -> Any:
        for r in records:
            if r["dynamodb"]["Keys"]["pk"]["S"] == "p3" and not failed:
                failed.append(r["dynamodb"]["SequenceNumber"])
                return {"batchItemFailures": [{"itemIdentifier": failed[0]}]}
        return {"batchItemFailures": []}

    rec = EventRecorder(behave=behave)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON", batch_size=10,
                                 function_response_types=("ReportBatchItemFailures",))
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config):
            await wait_for(lambda: len(rec.events) >= 2, 30)
            await wait_for(lambda: counter(metrics.records_processed, mapping.uuid) >= 6, 30)
    assert pks(rec.events[0]) == [f"p{i}" for i in range(6)]
    assert pks(rec.events[1]) == ["p3", "p4", "p5"]


async def test_poison_record_goes_to_on_failure_destination(
        dynamodb_local_endpoint: str, moto_endpoint: str, tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    dlq_url, dlq_arn = create_queue(moto_endpoint, unique_name("ddb-dlq"))
    for pk in ("ok1", "poison", "ok2"):
        put(ep, table, pk)

    def behave(records: list[dict[str, Any]]) -> Any:
        if "poison" in pks(records):
            raise RuntimeError("cannot handle this record")
        return None

    rec = EventRecorder(behave=behave)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON", batch_size=10,
                                 maximum_retry_attempts=1, bisect_batch_on_function_error=True,
                                 on_failure_destination=dlq_arn)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep, moto=moto_endpoint)
        async with running(config):
            [msg] = await asyncio.to_thread(receive_all, moto_endpoint, dlq_url, 1, 30)
            await wait_for(lambda: {"ok1", "ok2"} <= set(pks(rec.ok)), 30)
    doc = json.loads(msg["Body"])
    assert list(doc) == ["requestContext", "responseContext", "version", "timestamp",
                         "DDBStreamBatchInfo"]
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 2
    info = doc["DDBStreamBatchInfo"]
    poison = next(r for r in rec.seen() if pks([r]) == ["poison"])
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == (
        poison["dynamodb"]["SequenceNumber"])
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["approximateArrivalOfFirstRecord"])
    assert info["shardId"].startswith("shardId-")


async def test_restart_resumes_after_the_checkpoint(dynamodb_local_endpoint: str,
                                                    tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    for i in range(5):
        put(ep, table, f"a{i}")
    rec = EventRecorder()
    mapping = source_mapping(arn, starting_position="TRIM_HORIZON", batch_size=2)
    async with function_host(rec) as host:
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 5, 30)
        for i in range(5):
            put(ep, table, f"b{i}")
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 10, 30)
    assert pks(rec.ok) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]


async def test_latest_reads_only_new_records(dynamodb_local_endpoint: str,
                                             tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep, view="KEYS_ONLY")
    put(ep, table, "old")
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="LATEST")
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config) as svc:
            runner = svc.mappings[mapping.uuid]
            assert isinstance(runner, ShardCoordinator)
            await wait_for(lambda: runner.readers and all(
                r.polls for r, _s, _t in runner.readers.values()), 30)
            await asyncio.to_thread(put, ep, table, "new")
            await wait_for(lambda: rec.ok, 30)
    assert pks(rec.ok) == ["new"]
    assert list(rec.ok[0]["dynamodb"]) == ["ApproximateCreationDateTime", "Keys",
                                           "SequenceNumber", "SizeBytes", "StreamViewType"]


async def test_table_deleted_while_polling(dynamodb_local_endpoint: str, tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    put(ep, table, "x")
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON")
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config) as svc:
            runner = svc.mappings[mapping.uuid]
            assert isinstance(runner, ShardCoordinator)
            await wait_for(lambda: rec.ok, 30)
            make_boto3_client("dynamodb", ep).delete_table(TableName=table)
            await wait_for(lambda: runner.status.state == "Problem", 30)
            errors = counter(metrics.poll_errors, mapping.uuid)
            await asyncio.sleep(2)  # a crash loop would add errors every few milliseconds
            assert counter(metrics.poll_errors, mapping.uuid) - errors <= 4
            assert not runner.readers


class ThrottledOnce:
    """Wraps a ShardApi: the first ``n`` GetRecords calls answer LimitExceededException."""

    def __init__(self, api: Any, n: int) -> None:
        self._api = api
        self.left = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def get_records(self, iterator: str, limit: int) -> dict[str, Any]:
        if self.left > 0:
            self.left -= 1
            raise AwsError("LimitExceededException", "Rate exceeded for shard", 400)
        result: dict[str, Any] = await self._api.get_records(iterator, limit)
        return result


async def test_throttled_reads_back_off_and_resume(dynamodb_local_endpoint: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    for i in range(3):
        put(ep, table, f"t{i}")
    wrapped: list[ThrottledOnce] = []

    def throttled_api(*args: Any) -> ThrottledOnce:
        wrapped.append(ThrottledOnce(DynamoDBStreamsApi(*args), 4))
        return wrapped[-1]

    monkeypatch.setattr(service_module, "DynamoDBStreamsApi", throttled_api)
    rec = EventRecorder()
    tuning = dataclasses.replace(FAST, throttle_base_seconds=0.1, throttle_max_seconds=0.4)
    loop = asyncio.get_running_loop()
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON")
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep, tuning=tuning)
        t0 = loop.time()
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 3, 30)
            elapsed = loop.time() - t0
    assert wrapped[0].left == 0
    assert counter(metrics.poll_errors, mapping.uuid, kind="throttled") == 4
    assert counter(metrics.throttles, mapping.uuid, where="source") == 4
    # four backoffs of at least half their (growing) delay: 0.05 + 0.1 + 0.2 + 0.2
    assert elapsed >= 0.5
    assert pks(rec.ok) == ["t0", "t1", "t2"]


class ExpiresOnce:
    """Wraps a ShardApi: the GetRecords after the first records answers ExpiredIterator."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.reads = 0
        self.expired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def get_records(self, iterator: str, limit: int) -> dict[str, Any]:
        self.reads += 1
        if self.reads == 2 and not self.expired:
            self.expired = True
            raise AwsError("ExpiredIteratorException", "Iterator expired", 400)
        result: dict[str, Any] = await self._api.get_records(iterator, limit)
        return result


async def test_expired_iterator_is_renewed_after_the_last_record_read(
        dynamodb_local_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    for i in range(3):
        put(ep, table, f"e{i}")
    wrapped: list[ExpiresOnce] = []

    def expiring_api(*args: Any) -> ExpiresOnce:
        wrapped.append(ExpiresOnce(DynamoDBStreamsApi(*args)))
        return wrapped[-1]

    monkeypatch.setattr(service_module, "DynamoDBStreamsApi", expiring_api)
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON")
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 3, 30)
            await wait_for(lambda: wrapped[0].expired, 10)
            await asyncio.to_thread(put, ep, table, "e3")
            await wait_for(lambda: len(rec.ok) >= 4, 30)
    assert counter(metrics.poll_errors, mapping.uuid, kind="expired_iterator") == 1
    assert pks(rec.ok) == ["e0", "e1", "e2", "e3"]  # nothing lost, nothing read twice


async def test_filter_criteria_match_the_stream_record(dynamodb_local_endpoint: str,
                                                       tmp_path: Path) -> None:
    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    for i in range(6):
        put(ep, table, f"k{i}", status="SHIPPED" if i % 2 else "NEW")
    make_boto3_client("dynamodb", ep).delete_item(TableName=table, Key={"pk": {"S": "k1"}})
    rec = EventRecorder()
    patterns = ('{"eventName": ["INSERT"], '
                '"dynamodb": {"NewImage": {"status": {"S": ["SHIPPED"]}}}}',)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON", batch_size=10,
                                 filter_patterns=patterns)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               dynamodb=ep)
        async with running(config):
            await wait_for(lambda: counter(metrics.records_filtered, mapping.uuid) == 4, 30)
            await wait_for(lambda: len(rec.ok) >= 3, 30)
    seen = rec.seen()
    assert pks(seen) == ["k1", "k3", "k5"]
    assert all(r["eventName"] == "INSERT" for r in seen)
