"""Signed AWS JSON-protocol calls over a shared aiohttp session.

The hot data-plane calls (Kinesis GetRecords and friends) skip botocore's response parsing,
which base64-decodes every record and builds datetimes (most of a naive poller's CPU, see
servers.md). Requests are signed by ``poller.sigv4`` (byte-identical to botocore's SigV4Auth,
a sixth of its CPU) with the standard credential chain.
"""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import botocore.session
import orjson
from botocore.credentials import Credentials

from poller.awshttp import HttpConnectionError, LeanHttpClient
from poller.config_model import AwsConfig
from poller.sigv4 import PostSigner

RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException",
    "KMSThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "InternalFailure", "ServiceUnavailable", "InternalServerError",
})
THROTTLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException",
    "KMSThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
})


class AwsError(Exception):
    """An error answer from an AWS JSON API (``code`` is the short exception name)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES or self.status >= 500 or self.status == 0


class NoCredentialsError(Exception):
    pass


def resolve_credentials(aws: AwsConfig) -> Credentials:
    if aws.access_key_id and aws.secret_access_key:
        return Credentials(aws.access_key_id, aws.secret_access_key, aws.session_token)
    creds = botocore.session.get_session().get_credentials()
    if creds is None:
        raise NoCredentialsError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (any value "
            "works for local endpoints), a profile, or aws.access_key_id/secret_access_key in "
            "the config")
    return creds  # type: ignore[no-any-return]


def resolve_endpoint(aws: AwsConfig, service: str) -> str:
    configured = aws.endpoint_for(service)
    if configured:
        return configured.rstrip("/")
    client = botocore.session.get_session().create_client(
        service, region_name=aws.region_for(service), aws_access_key_id="x",
        aws_secret_access_key="x")
    return str(client.meta.endpoint_url).rstrip("/")


class AwsJsonClient:
    """``call(operation, body)`` for one AWS JSON 1.0/1.1 service (Kinesis, DynamoDB Streams).

    Calls go over ``poller.awshttp`` (a lean keep-alive client: a third of aiohttp's CPU per
    call) with a request head prepared per operation, only the date, signature and length
    filled in per call; ``lean=False`` (or an endpoint it cannot reach) uses the aiohttp
    session. Either way a failed connection or a timeout is ``AwsError("ConnectionError")``."""

    def __init__(self, *, service: str, signing_name: str, target_prefix: str,
                 json_version: str, aws: AwsConfig, session: aiohttp.ClientSession,
                 timeout_seconds: float = 30.0, lean: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._url = resolve_endpoint(aws, service) + "/"
        self._region = aws.region_for(service)
        self._signing_name = signing_name
        self._target_prefix = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"
        self._credentials = resolve_credentials(aws)
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._ssl = ssl_context
        self._signer = PostSigner(self._url, self._region, signing_name,
                                  {"Content-Type": self._content_type})
        self._lean = (LeanHttpClient(self._url, ssl_context, timeout_seconds)
                      if lean and LeanHttpClient.supports(self._url) else None)
        self._heads: dict[tuple[str, str | None], tuple[tuple[tuple[str, str], ...], bytes]] = {}

    @property
    def endpoint(self) -> str:
        return self._url

    @property
    def idle_connections(self) -> int:
        """Kept-alive connections of the lean client waiting for the next call."""
        return self._lean.idle_connections if self._lean is not None else 0

    def close(self) -> None:
        """Closes the lean client's idle connections (the aiohttp session is the caller's)."""
        if self._lean is not None:
            self._lean.close()

    def _signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        return self._signer.sign(body, self._credentials.get_frozen_credentials(),
                                 headers={"X-Amz-Target": f"{self._target_prefix}.{operation}"})

    def _head(self, operation: str, body: bytes) -> bytes:
        """The request line and headers for ``body``; all but the last three lines cached."""
        creds = self._credentials.get_frozen_credentials()
        key = (operation, creds.token)
        cached = self._heads.get(key)
        if cached is None:
            assert self._lean is not None
            target = f"{self._target_prefix}.{operation}"
            extra: tuple[tuple[str, str], ...] = (("X-Amz-Target", target),)
            token = f"X-Amz-Security-Token: {creds.token}\r\n" if creds.token else ""
            host = self._signer.host
            path = urlsplit(self._url).path or "/"
            prefix = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {self._content_type}"
                      f"\r\nX-Amz-Target: {target}\r\n{token}").encode()
            if len(self._heads) > 64:
                self._heads.clear()
            cached = self._heads[key] = (extra, prefix)
        extra, prefix = cached
        stamp, authorization = self._signer.authorization(body, creds, extra)
        return b"%sX-Amz-Date: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n" % (
            prefix, stamp.encode(), authorization.encode(), len(body))

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = _dumps(params)
        if self._lean is not None:
            try:
                status, raw = await self._lean.post(self._head(operation, body), body)
            except (HttpConnectionError, TimeoutError, OSError) as exc:
                raise AwsError("ConnectionError", f"{type(exc).__name__}: {exc}", 0) from exc
        else:
            status, raw = await self._post_aiohttp(operation, body)
        if status == 200:
            result: dict[str, Any] = _loads(raw) if raw else {}
            return result
        code, message = _parse_error(raw, status)
        raise AwsError(code, message, status)

    async def _post_aiohttp(self, operation: str, body: bytes) -> tuple[int, bytes]:
        headers = self._signed_headers(operation, body)
        try:
            async with self._session.post(self._url, data=body, headers=headers,
                                          timeout=self._timeout,
                                          ssl=self._ssl if self._ssl is not None else True
                                          ) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AwsError("ConnectionError", f"{type(exc).__name__}: {exc}", 0) from exc


def _dumps(params: dict[str, Any]) -> bytes:
    """A request body: orjson, the standard encoder for what orjson refuses (big integers)."""
    try:
        return orjson.dumps(params)
    except TypeError:
        return json.dumps(params, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    """A response body: orjson (AWS's JSON responses carry no integers beyond 64 bits), the
    standard parser for what orjson refuses."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _parse_error(raw: bytes, status: int) -> tuple[str, str]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return (f"HTTP{status}", raw[:200].decode("utf-8", "replace"))
    if not isinstance(doc, dict):
        return (f"HTTP{status}", "")
    code = str(doc.get("__type") or doc.get("code") or f"HTTP{status}")
    code = code.rsplit("#", 1)[-1].split(":", 1)[0]
    message = str(doc.get("message") or doc.get("Message") or "")
    return code, message
