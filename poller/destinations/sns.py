"""On-failure records to an SNS standard topic (``Message`` = the JSON document)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from poller.awsclients import AWS_CALL_ERRORS, destination_error
from poller.destinations import DestinationError, FailureContext

if TYPE_CHECKING:
    from poller.awsclients import AwsClients

SNS_MAX_MESSAGE_BYTES = 262_144


class SnsDestination:
    def __init__(self, arn: str, clients: AwsClients) -> None:
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sns" or not parts[5]:
            raise ValueError(f"not an SNS topic ARN: {arn!r}")
        self.arn = arn
        self._region = parts[3] or None
        self._clients = clients

    async def send(self, document: dict[str, Any], event_payload: bytes,
                   ctx: FailureContext) -> None:
        message = json.dumps(document)
        size = len(message.encode())
        if size > SNS_MAX_MESSAGE_BYTES:
            raise DestinationError(
                f"SNS {self.arn}: message of {size} bytes is over SNS's "
                f"{SNS_MAX_MESSAGE_BYTES}-byte limit", retryable=False)
        try:
            client = await self._clients.client("sns", self._region)
            await client.publish(TopicArn=self.arn, Message=message)
        except AWS_CALL_ERRORS as e:
            raise destination_error(f"SNS {self.arn}", e) from e

    async def close(self) -> None:
        return None
