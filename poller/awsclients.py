"""aiobotocore clients for every AWS service the poller talks to, created in one place.

``AwsClients`` owns one aiobotocore session and caches one client per (service, region); endpoint
and region overrides come from :class:`~poller.config_model.AwsConfig`. Lambda's client makes no
automatic retries (the processor decides about retries itself); all other services use botocore's
``standard`` retry mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from aiohttp import ClientError as AiohttpClientError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from poller.config_model import AwsConfig
from poller.destinations import DestinationError

# Error codes that mean "try again later" whatever the HTTP status says.
RETRYABLE_ERROR_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMS.ThrottlingException",
    "KMSThrottlingException",
})

_TRANSIENT = (
    HTTPClientError,
    BotoConnectionError,
    IncompleteReadError,
    CredentialRetrievalError,
    AiohttpClientError,
    OSError,  # includes TimeoutError / asyncio.TimeoutError
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_retryable(exc: BaseException) -> bool:
    """True for throttling, 5xx, timeouts and connection failures; False for everything a retry
    cannot fix (missing resource, access denied, invalid or too large request)."""
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in RETRYABLE_ERROR_CODES or status == 429 or status >= 500
    return isinstance(exc, _TRANSIENT)


class AwsClients:
    """Async context manager handing out cached aiobotocore clients.

    >>> async with AwsClients(AwsConfig(endpoint_url="http://127.0.0.1:5000")) as clients:
    ...     sqs = await clients.client("sqs")
    """

    def __init__(
        self,
        aws: AwsConfig | None = None,
        *,
        max_pool_connections: int = 200,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        lambda_read_timeout: float = 905.0,
        max_attempts: int = 5,
        session: AioSession | None = None,
    ) -> None:
        self.aws = aws or AwsConfig()
        self._session = session or get_session()
        self._max_pool = max_pool_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._lambda_read_timeout = lambda_read_timeout
        self._max_attempts = max_attempts
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> AwsClients:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _config(self, service: str) -> AioConfig:
        if service == "lambda":
            # The processor owns invoke retries: one attempt per call, long read timeout
            # (functions may run up to 15 minutes).
            return AioConfig(
                connect_timeout=self._connect_timeout,
                read_timeout=self._lambda_read_timeout,
                max_pool_connections=self._max_pool,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
        return AioConfig(
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_pool_connections=self._max_pool,
            retries={"total_max_attempts": self._max_attempts, "mode": "standard"},
        )

    async def client(self, service: str, region: str | None = None) -> Any:
        """The cached client for ``service``; ``region`` overrides the configured one (used
        when a resource's ARN names its region)."""
        region = region or self.aws.region_for(service)
        key = (service, region)
        found = self._clients.get(key)
        if found is not None:
            return found
        async with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
            if self._closed:
                raise RuntimeError("AwsClients is closed")
            kwargs: dict[str, Any] = {
                "region_name": region,
                "config": self._config(service),
            }
            endpoint = self.aws.endpoint_for(service)
            if endpoint:
                kwargs["endpoint_url"] = endpoint
            if self.aws.access_key_id and self.aws.secret_access_key:
                kwargs["aws_access_key_id"] = self.aws.access_key_id
                kwargs["aws_secret_access_key"] = self.aws.secret_access_key
                if self.aws.session_token:
                    kwargs["aws_session_token"] = self.aws.session_token
            client = await self._stack.enter_async_context(
                self._session.create_client(service, **kwargs)
            )
            self._clients[key] = client
            return client

    async def close(self) -> None:
        self._closed = True
        self._clients.clear()
        await self._stack.aclose()


AWS_CALL_ERRORS = (ClientError, BotoCoreError, AiohttpClientError, OSError)


def destination_error(where: str, exc: BaseException) -> DestinationError:
    """A failed on-failure delivery as a :class:`DestinationError`, retryable or not."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        detail = f"{error_code(exc) or 'HTTP ' + str(http_status(exc))}: {message}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return DestinationError(f"{where}: {detail}", retryable=is_retryable(exc))
