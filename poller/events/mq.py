"""Amazon MQ: the event envelopes around the messages the batcher wrote
(poller.batching.RabbitMqEncoder, ActiveMqEncoder).

RabbitMQ (``aws:rmq``): one invocation carries one queue's messages under
``rmqMessagesByQueue["<queue>::<virtual host>"]``. ActiveMQ (``aws:mq``): a ``messages`` array.
"""

from __future__ import annotations

import json

RABBITMQ_EVENT_SOURCE = "aws:rmq"
ACTIVEMQ_EVENT_SOURCE = "aws:mq"


def queue_key(queue: str, virtual_host: str) -> str:
    return f"{queue}::{virtual_host}"


def rabbitmq_envelope(broker_arn: str, queue: str, virtual_host: str) -> tuple[bytes, bytes]:
    """(head, tail) of a RabbitMQ event: head + messages joined by commas + tail."""
    head = ('{"eventSource":' + json.dumps(RABBITMQ_EVENT_SOURCE) + ',"eventSourceArn":'
            + json.dumps(broker_arn) + ',"rmqMessagesByQueue":{'
            + json.dumps(queue_key(queue, virtual_host)) + ":[")
    return head.encode("ascii"), b"]}}"


def activemq_envelope(broker_arn: str) -> tuple[bytes, bytes]:
    """(head, tail) of an ActiveMQ event."""
    head = ('{"eventSource":' + json.dumps(ACTIVEMQ_EVENT_SOURCE) + ',"eventSourceArn":'
            + json.dumps(broker_arn) + ',"messages":[')
    return head.encode("ascii"), b"]}"
