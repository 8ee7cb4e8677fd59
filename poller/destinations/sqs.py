"""On-failure records to an SQS standard queue (message body = the JSON document)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from poller.awsclients import AWS_CALL_ERRORS, destination_error, is_retryable
from poller.destinations import FailureContext

if TYPE_CHECKING:
    from poller.awsclients import AwsClients


class SqsDestination:
    def __init__(self, arn: str, clients: AwsClients) -> None:
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs" or not parts[5]:
            raise ValueError(f"not an SQS queue ARN: {arn!r}")
        self.arn = arn
        self._region = parts[3] or None
        self._account = parts[4]
        self._queue_name = parts[5]
        self._clients = clients
        self._queue_url: str | None = None
        self._lock = asyncio.Lock()

    async def _url(self, client: Any) -> str:
        async with self._lock:
            if self._queue_url is None:
                kwargs = {"QueueName": self._queue_name}
                if self._account:
                    kwargs["QueueOwnerAWSAccountId"] = self._account
                response = await client.get_queue_url(**kwargs)
                self._queue_url = str(response["QueueUrl"])
            return self._queue_url

    async def send(self, document: dict[str, Any], event_payload: bytes,
                   ctx: FailureContext) -> None:
        body = json.dumps(document)
        try:
            client = await self._clients.client("sqs", self._region)
            url = await self._url(client)
            await client.send_message(QueueUrl=url, MessageBody=body)
        except AWS_CALL_ERRORS as e:
            if not is_retryable(e):
                self._queue_url = None  # the queue may be re-created under a new URL
            raise destination_error(f"SQS {self.arn}", e) from e

    async def close(self) -> None:
        return None
