"""On-failure records to an S3 bucket: the JSON document plus ``payload``, the original
invocation event as a JSON string, under
``aws/lambda/<mapping UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid4>``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from typing import TYPE_CHECKING, Any

from poller.awsclients import AWS_CALL_ERRORS, destination_error
from poller.destinations import FailureContext

if TYPE_CHECKING:
    from poller.awsclients import AwsClients


def object_key(ctx: FailureContext) -> str:
    ts = ctx.timestamp.astimezone(UTC) if ctx.timestamp.tzinfo else ctx.timestamp
    return (f"aws/lambda/{ctx.mapping_uuid}/{ctx.shard_id}/{ts:%Y/%m/%d}/"
            f"{ts:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}")


class S3Destination:
    def __init__(self, arn: str, clients: AwsClients) -> None:
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "s3" or not parts[5] or "/" in parts[5]:
            raise ValueError(f"not an S3 bucket ARN: {arn!r}")
        self.arn = arn
        self.bucket = parts[5]
        self._clients = clients

    async def send(self, document: dict[str, Any], event_payload: bytes,
                   ctx: FailureContext) -> None:
        body = json.dumps({**document, "payload": event_payload.decode()}).encode()
        key = object_key(ctx)
        try:
            client = await self._clients.client("s3")
            await client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                    ContentType="application/json")
        except AWS_CALL_ERRORS as e:
            raise destination_error(f"S3 {self.arn}", e) from e

    async def close(self) -> None:
        return None
