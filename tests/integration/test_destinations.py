"""On-failure destinations deliver to real SQS, SNS and S3 (moto server) and classify failures."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from poller.awsclients import AwsClients
from poller.config_model import AwsConfig
from poller.destinations import DestinationError, FailureContext
from poller.destinations.factory import make_destination
from poller.destinations.sns import SNS_MAX_MESSAGE_BYTES
from tests.helpers import create_queue, make_boto3_client, receive_all, unique_name

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
EVENT = (b'{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"k",'
         b'"sequenceNumber":"1","data":"aGk=","approximateArrivalTimestamp":1700000000.123},'
         b'"eventSource":"aws:kinesis"}]}')
CTX = FailureContext(mapping_uuid="0b6d5c0e-1111-4222-8333-944445555666",
                     shard_id="shardId-000000000001",
                     timestamp=datetime(2024, 5, 6, 7, 8, 9, 21000, tzinfo=UTC))


def failure_document() -> dict[str, Any]:
    return {
        "requestContext": {
            "requestId": "c9b8fa9f-5a7f-4f0e-af9c-0c604cde93a5",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2024-05-06T07:08:09.021Z",
        "KinesisBatchInfo": {
            "shardId": "shardId-000000000001",
            "startSequenceNumber": "1",
            "endSequenceNumber": "1",
            "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.123Z",
            "approximateArrivalOfLastRecord": "2023-11-14T22:13:20.123Z",
            "batchSize": 1,
            "streamArn": STREAM_ARN,
        },
    }


def ordered_keys(text: str | bytes) -> list[str]:
    return [k for k, _ in json.loads(text, object_pairs_hook=lambda pairs: pairs)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def clients(moto_endpoint: str) -> AsyncIterator[AwsClients]:
    async with AwsClients(AwsConfig(endpoint_url=moto_endpoint), max_attempts=2) as c:
        yield c


# --- SQS -----------------------------------------------------------------------------------------


async def test_sqs_message_body_is_the_document(moto_endpoint: str,
                                                clients: AwsClients) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("dlq"))
    destination = make_destination(arn, clients)
    document = failure_document()
    await destination.send(document, EVENT, CTX)
    second = {**document, "version": "1.0-second"}
    await destination.send(second, EVENT, CTX)

    messages = receive_all(moto_endpoint, url, expected=2)
    bodies = sorted((m["Body"] for m in messages), key=len)
    assert [json.loads(b) for b in bodies] == [document, second]
    assert ordered_keys(bodies[0]) == ["requestContext", "responseContext", "version",
                                       "timestamp", "KinesisBatchInfo"]
    assert "payload" not in json.loads(bodies[0])
    await destination.close()


async def test_sqs_missing_queue_is_not_retryable(clients: AwsClients) -> None:
    destination = make_destination(
        f"arn:aws:sqs:us-east-1:123456789012:{unique_name('nope')}", clients)
    with pytest.raises(DestinationError) as raised:
        await destination.send(failure_document(), EVENT, CTX)
    assert raised.value.retryable is False
    assert "SQS arn:aws:sqs:" in str(raised.value)


async def test_unreachable_endpoint_is_retryable() -> None:
    aws = AwsConfig(endpoint_url=f"http://127.0.0.1:{closed_port()}")
    async with AwsClients(aws, max_attempts=1, connect_timeout=2) as clients:
        for arn in ("arn:aws:sqs:us-east-1:123456789012:q", "arn:aws:sns:us-east-1:123456789012:t",
                    "arn:aws:s3:::bucket"):
            with pytest.raises(DestinationError) as raised:
                await make_destination(arn, clients).send(failure_document(), EVENT, CTX)
            assert raised.value.retryable is True, arn


# --- SNS -----------------------------------------------------------------------------------------


async def test_sns_message_is_the_document(moto_endpoint: str, clients: AwsClients) -> None:
    sns = make_boto3_client("sns", moto_endpoint)
    topic_arn = sns.create_topic(Name=unique_name("topic"))["TopicArn"]
    url, queue_arn = create_queue(moto_endpoint, unique_name("sub"))
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "true"})

    document = failure_document()
    await make_destination(topic_arn, clients).send(document, EVENT, CTX)

    [message] = receive_all(moto_endpoint, url, expected=1)
    assert json.loads(message["Body"]) == document
    assert ordered_keys(message["Body"]) == list(document)


async def test_sns_over_256_kb_is_not_retryable(moto_endpoint: str,
                                                clients: AwsClients) -> None:
    sns = make_boto3_client("sns", moto_endpoint)
    topic_arn = sns.create_topic(Name=unique_name("topic"))["TopicArn"]
    document = {**failure_document(), "padding": "x" * SNS_MAX_MESSAGE_BYTES}
    with pytest.raises(DestinationError) as raised:
        await make_destination(topic_arn, clients).send(document, EVENT, CTX)
    assert raised.value.retryable is False
    assert "limit" in str(raised.value)


async def test_sns_missing_topic_is_not_retryable(clients: AwsClients) -> None:
    destination = make_destination(
        f"arn:aws:sns:us-east-1:123456789012:{unique_name('nope')}", clients)
    with pytest.raises(DestinationError) as raised:
        await destination.send(failure_document(), EVENT, CTX)
    assert raised.value.retryable is False


# --- S3 ------------------------------------------------------------------------------------------


async def test_s3_object_is_document_plus_payload(moto_endpoint: str,
                                                  clients: AwsClients) -> None:
    s3 = make_boto3_client("s3", moto_endpoint)
    bucket = unique_name("failures")
    s3.create_bucket(Bucket=bucket)
    document = failure_document()
    await make_destination(f"arn:aws:s3:::{bucket}", clients).send(document, EVENT, CTX)

    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert re.fullmatch(
        r"aws/lambda/0b6d5c0e-1111-4222-8333-944445555666/shardId-000000000001/2024/05/06/"
        r"2024-05-06T07\.08\.09-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
        r"[0-9a-f]{12}", obj["Key"]), obj["Key"]
    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    stored = json.loads(body)
    assert ordered_keys(body) == [*document, "payload"]
    assert {k: v for k, v in stored.items() if k != "payload"} == document
    assert isinstance(stored["payload"], str)
    assert stored["payload"] == EVENT.decode()


async def test_s3_missing_bucket_is_not_retryable(clients: AwsClients) -> None:
    destination = make_destination(f"arn:aws:s3:::{unique_name('nope')}", clients)
    with pytest.raises(DestinationError) as raised:
        await destination.send(failure_document(), EVENT, CTX)
    assert raised.value.retryable is False
    assert "NoSuchBucket" in str(raised.value)
