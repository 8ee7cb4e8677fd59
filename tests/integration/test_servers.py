"""The real test servers start, answer on loopback, and behave the way the product relies on."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerPool
from tests.helpers import (
    KinesisEndpoint,
    create_queue,
    create_stream,
    list_shard_ids,
    make_boto3_client,
    put_records,
    read_shard,
    receive_all,
    unique_name,
    wait_for_stream_status,
)
from tests.infra.servers import start


def test_kinesis_stream_round_trip(kinesis_endpoint: KinesisEndpoint) -> None:
    endpoint = kinesis_endpoint.endpoint
    stream = unique_name("smoke")
    arn = create_stream(endpoint, stream, shards=2)
    assert arn.endswith(f":stream/{stream}")
    assert len(list_shard_ids(endpoint, stream)) == 2

    [(shard_id, sequence_number)] = put_records(endpoint, stream, [("key-1", b"hello")])

    records = read_shard(endpoint, stream, shard_id)
    assert [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in records] == [
        (sequence_number, "key-1", b"hello")
    ]


def _read_until_shard_end(
    endpoint: str, stream: str, shard_id: str, timeout: float = 30.0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Reads a closed shard until the response without a NextShardIterator; returns the records
    and that closing response."""
    kinesis = make_boto3_client("kinesis", endpoint)
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response: dict[str, Any] = kinesis.get_records(ShardIterator=iterator)
        records.extend(response["Records"])
        if response.get("NextShardIterator") is None:
            return records, response
        iterator = response["NextShardIterator"]
    raise AssertionError(f"{shard_id} of {stream} did not end within {timeout} s")


def test_closing_read_of_a_split_parent(kinesis_endpoint: KinesisEndpoint) -> None:
    """kinesis-local reports ChildShards on a closed parent's last read, as AWS does;
    kinesalite ends the shard without them, so the product must also find children by ListShards."""
    endpoint = kinesis_endpoint.endpoint
    stream = unique_name("split")
    create_stream(endpoint, stream, shards=1)
    [parent] = list_shard_ids(endpoint, stream)
    [(_, sequence_number)] = put_records(endpoint, stream, [("k", b"before-split")])

    make_boto3_client("kinesis", endpoint).split_shard(
        StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2**127)
    )
    wait_for_stream_status(endpoint, stream, "ACTIVE")
    children = set(list_shard_ids(endpoint, stream)) - {parent}
    assert len(children) == 2

    records, closing = _read_until_shard_end(endpoint, stream, parent)

    assert [r["SequenceNumber"] for r in records] == [sequence_number]
    if kinesis_endpoint.name == "kinesis-local":
        assert {child["ShardId"] for child in closing["ChildShards"]} == children
        for child in closing["ChildShards"]:
            assert child["ParentShards"] == [parent]
    else:
        assert "ChildShards" not in closing


def test_moto_sqs_round_trip(moto_endpoint: str) -> None:
    url, arn = create_queue(moto_endpoint, unique_name("q"))
    assert arn.startswith("arn:aws:sqs:us-east-1:") and arn.endswith(url.rsplit("/", 1)[1])
    sqs = make_boto3_client("sqs", moto_endpoint)
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"hello": 1}',
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "smoke"}},
    )

    [message] = receive_all(moto_endpoint, url, expected=1, timeout=10)

    assert message["Body"] == '{"hello": 1}'
    assert message["MessageAttributes"]["kind"]["StringValue"] == "smoke"
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []


def test_moto_serves_sns_s3_and_dynamodb(moto_endpoint: str) -> None:
    name = unique_name("m")
    topic_arn = make_boto3_client("sns", moto_endpoint).create_topic(Name=name)["TopicArn"]
    assert topic_arn.endswith(f":{name}")

    s3 = make_boto3_client("s3", moto_endpoint)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a.json", Body=b"{}")
    assert s3.get_object(Bucket=name, Key="a.json")["Body"].read() == b"{}"

    dynamodb = make_boto3_client("dynamodb", moto_endpoint)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=name, Item={"pk": {"S": "x"}})
    assert dynamodb.get_item(TableName=name, Key={"pk": {"S": "x"}})["Item"] == {"pk": {"S": "x"}}


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on ``port``, from /proc/net/tcp{,6} (hex)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":
                addresses.add(address)
    return addresses


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net")
@pytest.mark.parametrize("name", ["kinesalite", "kinesis-local", "moto", "rabbitmq",
                                  "activemq"])
def test_server_listens_on_loopback_only(name: str, test_servers: ServerPool) -> None:
    server = test_servers.get(name)
    assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1


def test_stop_ends_the_process_and_frees_the_port(tmp_path: Path) -> None:
    server = start("kinesalite", log_dir=tmp_path)
    assert server.endpoint.startswith("http://127.0.0.1:")
    assert server.log_path.parent == tmp_path

    server.stop()

    assert server.process.returncode is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    assert "Listening at http://127.0.0.1:" in server.log_path.read_text()
