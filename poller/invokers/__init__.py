"""Targets that run a batch: AWS Lambda (Invoke API), plain HTTP, or an in-process handler.

Every invoker returns an :class:`InvokeResult`; classification into success, function error,
throttle, too-large and retryable errors happens here, once, for all targets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class Outcome(enum.Enum):
    OK = "ok"  # the function ran and returned normally
    FUNCTION_ERROR = "function_error"  # the function ran and failed (X-Amz-Function-Error)
    THROTTLED = "throttled"  # 429: retry with backoff, no retry attempt consumed
    TOO_LARGE = "too_large"  # 413: the payload is over the invoke limit; split the batch
    ERROR = "error"  # never reached the function (network, 5xx, 404...): retry, no attempt consumed


@dataclass(slots=True)
class InvokeResult:
    status: int  # HTTP status of the invoke call; 0 when no response was received
    payload: bytes = b""  # response body: the function's return value or error object
    function_error: str | None = None  # "Unhandled" / "Handled" when the function failed
    executed_version: str = "$LATEST"
    request_id: str = ""
    error: str | None = None  # transport/service error description (never the payload)

    @property
    def outcome(self) -> Outcome:
        if self.status == 0:
            return Outcome.ERROR
        if 200 <= self.status < 300:
            return Outcome.FUNCTION_ERROR if self.function_error else Outcome.OK
        if self.status == 429:
            return Outcome.THROTTLED
        if self.status == 413:
            return Outcome.TOO_LARGE
        return Outcome.ERROR


class Invoker(Protocol):
    """Invokes one function synchronously (RequestResponse) with a ready-made JSON payload."""

    async def invoke(self, payload: bytes) -> InvokeResult: ...

    async def close(self) -> None: ...
