"""The Amazon MQ encoders (RabbitMQ, ActiveMQ) and their envelopes, run against both
implementations."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiormq.abc
from pamqp import commands, header

from poller.events import mq as mq_events
from tests.unit.test_batching import all_impls, impl  # noqa: F401  (fixture)

ARN = "arn:aws:mq:us-west-2:111122223333:broker:pizzaBroker:b-9bcfa592-423a-4942-879d-eb284b4"


def delivery(body: bytes, tag: int = 1, redelivered: bool = False,
             **props: Any) -> aiormq.abc.DeliveredMessage:
    properties = commands.Basic.Properties(**props)
    return aiormq.abc.DeliveredMessage(
        delivery=commands.Basic.Deliver(consumer_tag="c", delivery_tag=tag,
                                        redelivered=redelivered, exchange="",
                                        routing_key="pizzaQueue"),
        header=header.ContentHeader(body_size=len(body), properties=properties),
        body=body, channel=None)  # type: ignore[arg-type]


def test_rabbitmq_message_matches_aws_example(impl: Any) -> None:  # noqa: F811
    body = b'{"timeout":0,"data":"CZrmf0Gw8Ov4bqLQxD4E"}'
    msg = delivery(body, tag=7, content_type="text/plain",
                   headers={"header1": "value1", "numberInHeader": 10},
                   delivery_mode=1, priority=34, expiration="60000",
                   timestamp=datetime(1970, 1, 1, 0, 33, 41, tzinfo=UTC),
                   user_id="AIDACKCEVSQ6C2EXAMPLE")
    [rec] = impl.RabbitMqEncoder().encode([msg])
    assert (rec.position, rec.seq) == (7, "7")
    doc = json.loads(rec.fragment)
    assert list(doc) == ["basicProperties", "redelivered", "data"]
    assert doc == {
        "basicProperties": {
            "contentType": "text/plain", "contentEncoding": None,
            "headers": {"header1": {"bytes": [118, 97, 108, 117, 101, 49]},
                        "numberInHeader": 10},
            "deliveryMode": 1, "priority": 34, "correlationId": None, "replyTo": None,
            "expiration": "60000", "messageId": None, "timestamp": "Jan 1, 1970, 12:33:41 AM",
            "type": None, "userId": "AIDACKCEVSQ6C2EXAMPLE", "appId": None, "clusterId": None,
            "bodySize": len(body),
        },
        "redelivered": False,
        "data": base64.b64encode(body).decode(),
    }


def test_rabbitmq_header_values_and_dates(impl: Any) -> None:  # noqa: F811
    msg = delivery(b"", redelivered=True, headers={
        "s": "\u00e9", "b": b"\xff\x00", "t": True, "f": 1.5, "n": None, "d": Decimal("2.5"),
        "nested": {"x": [1, "y"]}, "when": datetime(2024, 7, 4, 13, 5, 9)})
    [rec] = impl.RabbitMqEncoder().encode([msg])
    doc = json.loads(rec.fragment)
    assert doc["redelivered"] is True and doc["data"] == ""
    assert doc["basicProperties"]["headers"] == {
        "s": {"bytes": [-61, -87]}, "b": {"bytes": [-1, 0]}, "t": True, "f": 1.5, "n": None,
        "d": 2.5, "nested": {"x": [1, {"bytes": [121]}]}, "when": "Jul 4, 2024, 1:05:09 PM"}
    assert impl.java_date(datetime(2024, 12, 31, 12, 0, 0, tzinfo=UTC)) == (
        '"Dec 31, 2024, 12:00:00 PM"')


def test_rabbitmq_envelope_keys_queue_by_vhost(impl: Any) -> None:  # noqa: F811
    records = impl.RabbitMqEncoder().encode([delivery(b"a", tag=1), delivery(b"b", tag=2)])
    head, tail = mq_events.rabbitmq_envelope(ARN, "pizzaQueue", "/")
    payload = impl.build_framed(head, records, tail=tail)
    assert impl.framed_size(records, fixed_bytes=len(head) + len(tail)) == len(payload)
    doc = json.loads(payload)
    assert list(doc) == ["eventSource", "eventSourceArn", "rmqMessagesByQueue"]
    assert doc["eventSource"] == "aws:rmq" and doc["eventSourceArn"] == ARN
    assert [m["data"] for m in doc["rmqMessagesByQueue"]["pizzaQueue::/"]] == ["YQ==", "Yg=="]


def stomp_headers(**extra: str) -> dict[str, str]:
    headers = {"expires": "0", "destination": "/queue/testQueue", "subscription": "1",
               "priority": "1", "message-id": "ID:b-9bcfa592-1.mq-37557-1234520418293-4:1:1:1:1",
               "persistent": "false", "timestamp": "1598827811958",
               "ack": "ID:x-1", "correlation-id": "myJMSCoID", "testKey": "testValue"}
    headers.update(extra)
    return headers


def test_activemq_message_matches_aws_example(impl: Any) -> None:  # noqa: F811
    [rec] = impl.ActiveMqEncoder().encode(
        [(stomp_headers(expires="60000"), b"ABC:AAAA", False)], 1598827811959)
    assert rec.seq == "ID:b-9bcfa592-1.mq-37557-1234520418293-4:1:1:1:1" and rec.position == 1
    assert rec.arrival == 1598827811.958
    doc = json.loads(rec.fragment)
    assert doc == {
        "messageID": "ID:b-9bcfa592-1.mq-37557-1234520418293-4:1:1:1:1",
        "messageType": "jms/text-message", "deliveryMode": 1, "replyTo": None, "type": None,
        "expiration": "60000", "priority": 1, "correlationId": "myJMSCoID",
        "redelivered": False, "destination": {"physicalName": "testQueue"},
        "data": "QUJDOkFBQUE=", "timestamp": 1598827811958, "brokerInTime": 1598827811958,
        "brokerOutTime": 1598827811959, "properties": {"testKey": "testValue"},
    }


def test_activemq_bytes_persistent_redelivered(impl: Any) -> None:  # noqa: F811
    enc = impl.ActiveMqEncoder()
    headers = stomp_headers(persistent="true", redelivered="true", **{"content-length": "2"})
    del headers["correlation-id"]
    [rec] = enc.encode([(headers, b"\x00\xff", True)], 5)
    doc = json.loads(rec.fragment)
    assert (doc["messageType"], doc["deliveryMode"], doc["redelivered"]) == (
        "jms/bytes-message", 2, True)
    assert doc["correlationId"] is None and doc["expiration"] is None
    assert base64.b64decode(doc["data"]) == b"\x00\xff"
    assert enc.encode([(headers, b"", True)], 5)[0].position == 2
    head, tail = mq_events.activemq_envelope(ARN)
    event = json.loads(impl.build_framed(head, [rec], tail=tail))
    assert list(event) == ["eventSource", "eventSourceArn", "messages"]
    assert event["eventSource"] == "aws:mq" and len(event["messages"]) == 1


def test_both_implementations_write_the_same_bytes() -> None:
    rng = random.Random(7)
    rmq = [delivery(rng.randbytes(rng.randrange(0, 50)), tag=i, redelivered=rng.random() < .5,
                    content_type=rng.choice([None, "application/json"]),
                    headers=rng.choice([None, {"k": "v\u00e9", "n": rng.randrange(-9, 9)}]),
                    delivery_mode=rng.choice([None, 1, 2]), priority=rng.choice([None, 0, 9]),
                    message_id=rng.choice([None, 'q"uote']),
                    timestamp=rng.choice([None, datetime(2020, 2, 29, 23, 59, 59)]))
           for i in range(1, 60)]
    amq = [(stomp_headers(**{f"p{i}": "\u2603", "priority": str(i % 10)}),
            rng.randbytes(rng.randrange(0, 50)), rng.random() < .5) for i in range(60)]
    outputs = [([r.fragment for r in cls.RabbitMqEncoder().encode(rmq)],
                [r.fragment for r in cls.ActiveMqEncoder().encode(amq, 99)])
               for cls in all_impls()]
    assert outputs[0] == outputs[1]
