"""Arranging state on the real test servers (boto3, synchronous) and waiting for conditions.

The product talks to AWS through aiobotocore; tests use boto3 here only to set up and inspect state.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import boto3  # type: ignore[import-untyped]
from botocore.config import Config

__all__ = [
    "KinesisEndpoint",
    "b64",
    "create_queue",
    "create_stream",
    "list_shard_ids",
    "make_boto3_client",
    "put_records",
    "read_shard",
    "receive_all",
    "unique_name",
    "wait_for",
    "wait_for_stream_status",
    "wait_until",
]

T = TypeVar("T")

REGION = "us-east-1"
_CLIENT_CONFIG = Config(
    region_name=REGION,
    connect_timeout=5,
    read_timeout=60,
    retries={"mode": "standard", "max_attempts": 5},
)
_session_lock = threading.Lock()


class KinesisEndpoint(NamedTuple):
    """One Kinesis server the tests run against: ``name`` is "kinesalite" or "kinesis-local"."""

    name: str
    endpoint: str


def unique_name(prefix: str = "t") -> str:
    """A name no other test uses on the shared servers (valid for streams, queues, tables)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@functools.cache
def make_boto3_client(service: str, endpoint: str) -> Any:
    """A boto3 client for ``service`` at ``endpoint`` with test credentials (cached)."""
    with _session_lock:
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=_CLIENT_CONFIG,
        )


def _deadline_loop(timeout: float, interval: float) -> Iterable[float]:
    """Yields until ``timeout`` seconds have passed, sleeping ``interval`` between rounds."""
    deadline = time.monotonic() + timeout
    while True:
        yield deadline - time.monotonic()
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


# --- Kinesis -------------------------------------------------------------------------------------


def wait_for_stream_status(
    endpoint: str, name: str, status: str = "ACTIVE", timeout: float = 30.0
) -> dict[str, Any]:
    """Polls DescribeStreamSummary until the stream has ``status``; returns the summary."""
    kinesis = make_boto3_client("kinesis", endpoint)
    seen = None
    for _ in _deadline_loop(timeout, 0.02):
        summary: dict[str, Any] = kinesis.describe_stream_summary(StreamName=name)[
            "StreamDescriptionSummary"
        ]
        seen = summary["StreamStatus"]
        if seen == status:
            return summary
    raise AssertionError(f"stream {name} is {seen}, not {status}, after {timeout} s")


def create_stream(endpoint: str, name: str, shards: int = 1, timeout: float = 30.0) -> str:
    """Creates a provisioned stream, waits until it is ACTIVE and returns its ARN."""
    make_boto3_client("kinesis", endpoint).create_stream(StreamName=name, ShardCount=shards)
    return str(wait_for_stream_status(endpoint, name, "ACTIVE", timeout)["StreamARN"])


def list_shard_ids(endpoint: str, stream: str) -> list[str]:
    """Every shard of the stream (open and closed), in ListShards order."""
    kinesis = make_boto3_client("kinesis", endpoint)
    shard_ids: list[str] = []
    response = kinesis.list_shards(StreamName=stream)
    while True:
        shard_ids.extend(shard["ShardId"] for shard in response["Shards"])
        token = response.get("NextToken")
        if not token:
            return shard_ids
        response = kinesis.list_shards(NextToken=token)


Record = tuple[str, bytes | str] | Mapping[str, Any]


def _entry(record: Record) -> dict[str, Any]:
    if isinstance(record, Mapping):
        entry = dict(record)
    else:
        key, data = record
        entry = {"PartitionKey": key, "Data": data}
    if isinstance(entry["Data"], str):
        entry["Data"] = entry["Data"].encode()
    return entry


def put_records(
    endpoint: str, stream: str, records: Iterable[Record], timeout: float = 60.0
) -> list[tuple[str, str]]:
    """Writes records in order, 500 per PutRecords call, retrying the entries that failed.

    A record is ``(partition_key, data)`` or a PutRecords entry dict (``Data``,
    ``PartitionKey``, optionally ``ExplicitHashKey``). Returns ``(shard_id, sequence_number)``
    for each record, in input order.
    """
    kinesis = make_boto3_client("kinesis", endpoint)
    entries = [_entry(record) for record in records]
    results: list[tuple[str, str] | None] = [None] * len(entries)
    deadline = time.monotonic() + timeout
    for start in range(0, len(entries), 500):
        pending = list(range(start, min(start + 500, len(entries))))
        while pending:
            response = kinesis.put_records(StreamName=stream, Records=[entries[i] for i in pending])
            failed = []
            for index, result in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in result:
                    results[index] = (result["ShardId"], result["SequenceNumber"])
                else:
                    failed.append(index)
            if failed and time.monotonic() > deadline:
                raise AssertionError(f"{len(failed)} records still failing to put into {stream}")
            if failed:
                time.sleep(0.05)
            pending = failed
    return [result for result in results if result is not None]


def read_shard(
    endpoint: str,
    stream: str,
    shard_id: str,
    iterator_type: str = "TRIM_HORIZON",
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Every record in the shard from ``iterator_type`` up to its tip (or its end, if closed)."""
    kinesis = make_boto3_client("kinesis", endpoint)
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType=iterator_type
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    for _ in _deadline_loop(timeout, 0.0):
        response = kinesis.get_records(ShardIterator=iterator, Limit=10000)
        records.extend(response["Records"])
        iterator = response.get("NextShardIterator")
        if iterator is None or (
            not response["Records"] and response.get("MillisBehindLatest", 0) == 0
        ):
            return records
    raise AssertionError(f"reading {stream}/{shard_id} did not reach the tip within {timeout} s")


def b64(data: bytes | str) -> str:
    """The base64 text Lambda puts in ``kinesis.data`` for these bytes."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


# --- SQS -----------------------------------------------------------------------------------------


def create_queue(
    endpoint: str, name: str, attributes: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Creates an SQS queue (FIFO when the name ends in ``.fifo``); returns ``(url, arn)``."""
    sqs = make_boto3_client("sqs", endpoint)
    attrs = dict(attributes or {})
    if name.endswith(".fifo"):
        attrs.setdefault("FifoQueue", "true")
    url: str = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def receive_all(
    endpoint: str, queue_url: str, expected: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Receives (and deletes) messages until ``expected`` have arrived; returns them in
    arrival order with their attributes. Fails if fewer arrive within ``timeout`` seconds."""
    sqs = make_boto3_client("sqs", endpoint)
    messages: list[dict[str, Any]] = []
    for remaining in _deadline_loop(timeout, 0.0):
        if len(messages) >= expected:
            return messages
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max(1, expected - len(messages))),
            WaitTimeSeconds=max(0, min(1, int(remaining))),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        if batch:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )
            messages.extend(batch)
    if len(messages) >= expected:
        return messages
    raise AssertionError(
        f"received {len(messages)} of {expected} messages from {queue_url} within {timeout} s"
    )


# --- waiting -------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T], timeout: float, interval: float = 0.05, message: str = ""
) -> T:
    """Calls ``predicate`` until it returns something truthy, which is returned.

    Raises AssertionError(``message``) if that does not happen within ``timeout`` seconds.
    """
    for _ in _deadline_loop(timeout, interval):
        value = predicate()
        if value:
            return value
    raise AssertionError(message or f"condition not met within {timeout} s: {predicate!r}")


async def wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,  # noqa: ASYNC109 - a condition's deadline; timing out fails the test
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Async twin of :func:`wait_until`; ``predicate`` may be a plain or an async function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s: {predicate!r}")
        await asyncio.sleep(interval)
