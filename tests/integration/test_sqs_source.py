"""SQS source end to end on moto server: the real service, the function host over the Lambda
Invoke API, real queues with redrive policies.

SQS delivers at least once, and moto's ReceiveMessage is not atomic: two concurrent receives
can now and then return the same message. Tests therefore compare sets where a duplicate is
allowed, and prove "not delivered again" through ApproximateReceiveCount."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from poller.sources.sqs import SqsMapping
from tests.helpers import create_queue, make_boto3_client, receive_all, unique_name, wait_for
from tests.integration.pipeline_harness import counter, metrics, running
from tests.integration.source_harness import (
    EventRecorder,
    function_host,
    source_config,
    source_mapping,
)


def send(moto: str, url: str, bodies: list[str], group: str | None = None,
         attributes: dict[str, Any] | None = None) -> None:
    sqs = make_boto3_client("sqs", moto)
    for i in range(0, len(bodies), 10):
        entries: list[dict[str, Any]] = []
        for n, body in enumerate(bodies[i:i + 10]):
            entry: dict[str, Any] = {"Id": str(n), "MessageBody": body}
            if group is not None:
                entry["MessageGroupId"] = group
                entry["MessageDeduplicationId"] = hashlib.sha1(body.encode()).hexdigest()
            if attributes:
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        resp = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not resp.get("Failed"), resp


def queue_count(moto: str, url: str) -> int:
    attrs = make_boto3_client("sqs", moto).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"])


async def test_event_shape_and_delete_on_success(moto_endpoint: str, tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"))
    send(moto_endpoint, url, ["hello", "world"],
         attributes={"color": {"DataType": "String", "StringValue": "red"}})
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 2, 30)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    record = rec.seen()[0]
    assert list(record) == ["messageId", "receiptHandle", "body", "attributes",
                            "messageAttributes", "md5OfBody", "md5OfMessageAttributes",
                            "eventSource", "eventSourceARN", "awsRegion"]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["messageAttributes"] == {"color": {
        "stringValue": "red", "stringListValues": [], "binaryListValues": [],
        "dataType": "String"}}
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"])
    assert {r["body"] for r in rec.seen()} == {"hello", "world"}


async def test_partial_batch_response_and_poison_message_reaches_dlq(
        moto_endpoint: str, tmp_path: Path) -> None:
    _dlq_url, dlq_arn = create_queue(moto_endpoint, unique_name("dlq"))
    url, arn = create_queue(moto_endpoint, unique_name("sqs"), {
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})
    bodies = [f"m{i}" for i in range(6)] + ["poison"]
    send(moto_endpoint, url, bodies)

    def behave(records: list[dict[str, Any]]) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                      for r in records if r["body"] == "poison"]}

    rec = EventRecorder(behave=behave)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, function_response_types=("ReportBatchItemFailures",))
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            dead = await asyncio.to_thread(receive_all, moto_endpoint, _dlq_url, 1, 30)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    assert [m["Body"] for m in dead] == ["poison"]
    seen = [r["body"] for r in rec.seen()]
    # every good message was deleted after its invocation; the poison one came back
    assert {b for b in seen if b != "poison"} == set(bodies[:-1])
    assert seen.count("poison") >= 2


async def test_bad_partial_response_fails_whole_batch(moto_endpoint: str,
                                                      tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"), {"VisibilityTimeout": "1"})
    send(moto_endpoint, url, ["a", "b"])
    calls: list[int] = []

    def behave(records: list[dict[str, Any]]) -> Any:
        calls.append(len(records))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}
        return None

    rec = EventRecorder(behave=behave)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, function_response_types=("ReportBatchItemFailures",))
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
            assert counter(metrics.bad_responses, mapping.uuid) >= 1
    bodies = [r["body"] for r in rec.seen()]
    # nothing was deleted after the bad response: both came again
    assert bodies.count("a") >= 2 and bodies.count("b") >= 2


CONCURRENT_MS = 25  # receives this close together overlapped in moto


async def test_fifo_keeps_group_order_and_one_batch_per_group(moto_endpoint: str,
                                                              tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("fifo") + ".fifo")
    groups = {g: [f"{g}-{i:02d}" for i in range(12)] for g in ("a", "b", "c")}
    for g, bodies in groups.items():
        send(moto_endpoint, url, bodies, group=g)
    rec = EventRecorder(delay=0.05, key_of=lambda r: r["attributes"]["MessageGroupId"])
    async with function_host(rec) as host:
        mapping = source_mapping(arn, batch_size=3)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 36, 60)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    seen = rec.seen()
    received = {r["body"]: int(r["attributes"]["ApproximateFirstReceiveTimestamp"])
                for r in reversed(seen)}
    server_broke_order = False
    for g, bodies in groups.items():
        in_group = list(dict.fromkeys(
            r["body"] for r in seen if r["attributes"]["MessageGroupId"] == g))
        if in_group == bodies:
            continue
        # the poller must keep the order the queue hands out: an inversion is ours unless the
        # two messages went out in concurrent receives (moto's FIFO group lock can race between
        # them; SQS's does not)
        inversions = [(a, b) for i, a in enumerate(in_group) for b in in_group[i + 1:]
                      if bodies.index(a) > bodies.index(b)]
        assert all(received[a] <= received[b] + CONCURRENT_MS for a, b in inversions), (
            in_group, received)
        server_broke_order = True
    if server_broke_order:
        pytest.xfail("moto handed a FIFO group's messages out of order to concurrent receives")
    assert rec.overlaps == 0
    assert {"SequenceNumber", "MessageGroupId", "MessageDeduplicationId"} <= set(
        seen[0]["attributes"])


async def test_fifo_failure_holds_back_the_rest_of_its_group(moto_endpoint: str,
                                                             tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("fifo") + ".fifo",
                            {"VisibilityTimeout": "1"})
    send(moto_endpoint, url, ["g-1", "g-2", "g-3"], group="g")
    failed_once: list[str] = []

    def behave(records: list[dict[str, Any]]) -> Any:
        for r in records:
            if r["body"] == "g-2" and not failed_once:
                failed_once.append(r["messageId"])
                return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}]}
        return None

    rec = EventRecorder(behave=behave)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, function_response_types=("ReportBatchItemFailures",))
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    batches = [[r["body"] for r in b] for b in rec.events]
    assert batches[0] == ["g-1", "g-2", "g-3"]
    # g-3 was not deleted although the function did not report it: both come again. (moto
    # hands the two back in either order once their visibility timeout ends, and now and then
    # to two concurrent receives at once; SQS keeps order and delivers FIFO messages once.)
    assert {b for batch in batches[1:] for b in batch} == {"g-2", "g-3"}


async def test_restart_without_loss(moto_endpoint: str, tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"), {"VisibilityTimeout": "2"})
    bodies = [f"r{i}" for i in range(40)]  # enough that a stop after 5 leaves work
    send(moto_endpoint, url, bodies)
    rec = EventRecorder(delay=0.3)
    mapping = source_mapping(arn, batch_size=5, maximum_concurrency=2)
    async with function_host(rec) as host:
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 5, 30)
        assert len({r["body"] for r in rec.ok}) < len(bodies)  # stopped with work left
        async with running(config):
            await wait_for(lambda: {r["body"] for r in rec.ok} == set(bodies), 60)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    assert rec.max_in_flight <= 2  # ScalingConfig.MaximumConcurrency


async def test_visibility_is_extended_while_a_batch_is_processed(moto_endpoint: str,
                                                                 tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"), {"VisibilityTimeout": "2"})
    rec = EventRecorder(delay=5.0)  # longer than the visibility timeout
    async with function_host(rec) as host:
        mapping = source_mapping(arn, maximum_concurrency=2)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            send(moto_endpoint, url, ["slow"])
            await wait_for(lambda: rec.ok, 30)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    # an idle poller was long-polling all along: had the message become visible again after
    # 2 s, it would have been received a second time (ApproximateReceiveCount 2)
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in rec.seen()]
    assert counts and set(counts) == {"1"}


async def test_queue_deleted_while_polling(moto_endpoint: str, tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"))
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config) as svc:
            runner = svc.mappings[mapping.uuid]
            assert isinstance(runner, SqsMapping)
            await wait_for(lambda: runner.status.state == "Enabled", 10)
            make_boto3_client("sqs", moto_endpoint).delete_queue(QueueUrl=url)
            await wait_for(lambda: runner.status.state == "Problem", 30)
            assert "QueueDoesNotExist" in runner.status.reason
            errors = counter(metrics.poll_errors, mapping.uuid, kind="not_found")
            await asyncio.sleep(2)  # a crash loop would add an error every few milliseconds
            assert counter(metrics.poll_errors, mapping.uuid, kind="not_found") - errors <= 3
            assert not runner.pollers
            # the queue comes back: the mapping picks it up again
            create_queue(moto_endpoint, url.rsplit("/", 1)[1])
            send(moto_endpoint, url, ["back"])
            await wait_for(lambda: [r["body"] for r in rec.ok] == ["back"], 90)
            assert runner.status.state == "Enabled"


async def test_pollers_scale_up_while_messages_keep_coming(moto_endpoint: str,
                                                           tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"))
    send(moto_endpoint, url, [f"s{i}" for i in range(400)])
    rec = EventRecorder(delay=0.1)
    peak: list[float] = [0.0]
    async with function_host(rec) as host:
        mapping = source_mapping(arn, batch_size=10, maximum_concurrency=8)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            def grown() -> bool:
                peak[0] = max(peak[0], counter(metrics.sqs_pollers, mapping.uuid))
                return peak[0] > 5
            await wait_for(grown, 30)
            await wait_for(lambda: len(rec.ok) >= 400, 60)
    assert 5 < peak[0] <= 8 and rec.max_in_flight <= 8


async def test_batches_stay_under_the_invoke_payload_limit(moto_endpoint: str,
                                                           tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"))
    big = [f"{i:03d}" + "x" * 240_000 for i in range(30)]  # 7.2 MB in all
    for body in big:  # one SendMessageBatch carries at most 256 KB
        send(moto_endpoint, url, [body])
    sizes: list[int] = []

    def behave(records: list[dict[str, Any]]) -> Any:
        sizes.append(len(json.dumps({"Records": records})))

    rec = EventRecorder(behave=behave)
    async with function_host(rec) as host:
        mapping = source_mapping(arn, batch_size=100, maximum_batching_window_in_seconds=1)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: len(rec.ok) >= 30, 60)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
    assert len(rec.events) >= 2 and max(sizes) <= 6_291_456
    assert {r["body"][:3] for r in rec.ok} == {f"{i:03d}" for i in range(30)}


async def test_throttled_invokes_leave_messages_for_later(moto_endpoint: str,
                                                          tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"), {"VisibilityTimeout": "1"})
    bodies = [f"t{i}" for i in range(30)]
    send(moto_endpoint, url, bodies)
    rec = EventRecorder(delay=0.2)
    async with function_host(rec, concurrency=1) as host:  # reserved concurrency 1: 429s
        mapping = source_mapping(arn, batch_size=2)
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: {r["body"] for r in rec.ok} == set(bodies), 60)
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
            assert counter(metrics.throttles, mapping.uuid, where="invoke") > 0
    assert rec.max_in_flight == 1


async def test_filtered_messages_are_deleted_and_never_invoked(moto_endpoint: str,
                                                               tmp_path: Path) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("sqs"))
    keep = [json.dumps({"kind": "order", "n": i}) for i in range(3)] + ["ping-1", "ping-2"]
    drop = ([json.dumps({"kind": "refund", "n": i}) for i in range(3)]
            + ["noise", "order", json.dumps(["ping"])])
    send(moto_endpoint, url, drop[:5] + keep + drop[5:])
    rec = EventRecorder()
    async with function_host(rec) as host:
        mapping = source_mapping(arn, filter_patterns=(
            '{"body": {"kind": ["order"]}}', '{"body": [{"prefix": "ping"}]}'))
        config = source_config(mapping, lambda_endpoint=host.endpoint, state=tmp_path / "s.db",
                               moto=moto_endpoint)
        async with running(config):
            await wait_for(lambda: queue_count(moto_endpoint, url) == 0, 30)
            await wait_for(lambda: len({r["body"] for r in rec.ok}) >= len(keep), 30)
            filtered = counter(metrics.records_filtered, mapping.uuid, shard=url.rsplit("/", 1)[1])
    assert {r["body"] for r in rec.seen()} == set(keep)
    assert filtered >= len(drop)  # moto may now and then hand out a message twice
