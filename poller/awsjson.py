"""Signed AWS JSON-protocol calls over a shared aiohttp session.

The hot data-plane calls (Kinesis GetRecords and friends) skip botocore's response parsing,
which base64-decodes every record and builds datetimes (most of a naive poller's CPU, see
servers.md). Requests are signed by ``poller.sigv4`` (byte-identical to botocore's SigV4Auth,
a sixth of its CPU) with the standard credential chain.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import botocore.session
import orjson
from botocore.credentials import Credentials

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
    """``call(operation, body)`` for one AWS JSON 1.0/1.1 service (Kinesis, DynamoDB Streams)."""

    def __init__(self, *, service: str, signing_name: str, target_prefix: str,
                 json_version: str, aws: AwsConfig, session: aiohttp.ClientSession,
                 timeout_seconds: float = 30.0) -> None:
        self._url = resolve_endpoint(aws, service) + "/"
        self._region = aws.region_for(service)
        self._signing_name = signing_name
        self._target_prefix = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"
        self._credentials = resolve_credentials(aws)
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._signer = PostSigner(self._url, self._region, signing_name,
                                  {"Content-Type": self._content_type})

    @property
    def endpoint(self) -> str:
        return self._url

    def _signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        return self._signer.sign(body, self._credentials.get_frozen_credentials(),
                                 headers={"X-Amz-Target": f"{self._target_prefix}.{operation}"})

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        headers = self._signed_headers(operation, body)
        try:
            async with self._session.post(self._url, data=body, headers=headers,
                                          timeout=self._timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AwsError("ConnectionError", f"{type(exc).__name__}: {exc}", 0) from exc
        if status == 200:
            result: dict[str, Any] = _loads(raw) if raw else {}
            return result
        code, message = _parse_error(raw, status)
        raise AwsError(code, message, status)


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
