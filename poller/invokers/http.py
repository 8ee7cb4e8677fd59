"""Invoke a plain HTTP endpoint: POST the event JSON, read the response as the function's result.

A 2xx response is a successful invocation and its body the function's return value. A plain HTTP
target signals a *function error* the way Lambda does, with an ``X-Amz-Function-Error`` response
header (e.g. ``Unhandled``) on a 2xx response; the batch is then retried or bisected as a
function error. 429 means throttled and 413 payload too large, as for Lambda. Every other status
(5xx, 404, ...) and any connection failure or timeout means the batch never reached the function:
it is retried with backoff without using up ``MaximumRetryAttempts``.
"""

from __future__ import annotations

import aiohttp

from poller.invokers import InvokeResult


class HttpInvoker:
    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_seconds: float = 900.0,
        connect_timeout_seconds: float = 10.0,
        max_connections: int = 256,
    ) -> None:
        self._url = url
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds,
                                              sock_connect=connect_timeout_seconds)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                headers=self._headers,
            )
        return self._session

    async def invoke(self, payload: bytes) -> InvokeResult:
        session = self._get_session()
        try:
            async with session.post(self._url, data=payload) as response:
                body = await response.read()
                status = response.status
                headers = response.headers
                reason = response.reason or ""
        except TimeoutError:
            return InvokeResult(status=0, error=f"HTTP invoke timed out after "
                                                f"{self._timeout.total:g}s")
        except (aiohttp.ClientError, OSError) as e:
            return InvokeResult(status=0, error=f"{type(e).__name__}: {e}")
        request_id = headers.get("x-amzn-RequestId") or headers.get("X-Request-Id") or ""
        if not 200 <= status < 300:
            error_type = headers.get("x-amzn-ErrorType")
            text = f"HTTP {status} {reason}".rstrip()
            return InvokeResult(status=status, request_id=request_id,
                                error=f"{text} ({error_type})" if error_type else text)
        return InvokeResult(
            status=status,
            payload=body,
            function_error=headers.get("X-Amz-Function-Error") or None,
            executed_version=headers.get("X-Amz-Executed-Version") or "$LATEST",
            request_id=request_id,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


