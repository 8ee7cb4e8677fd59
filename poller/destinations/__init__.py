"""On-failure destinations (SQS, SNS, S3) for records a mapping gives up on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class FailureContext:
    mapping_uuid: str
    shard_id: str
    timestamp: datetime  # UTC time of discard, also used in the S3 key


class DestinationError(Exception):
    """Delivery failed; ``retryable`` tells whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Destination(Protocol):
    async def send(self, document: dict[str, Any], event_payload: bytes,
                   ctx: FailureContext) -> None:
        """Deliver one on-failure record. ``document`` is AWS's record shape (SQS/SNS body);
        S3 adds ``payload`` (the original invocation event as a JSON string). Raises
        DestinationError on failure."""
        ...

    async def close(self) -> None: ...
