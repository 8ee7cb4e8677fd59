"""Invoke through AWS Lambda's Invoke API (or any endpoint speaking it, e.g. LocalStack or
:mod:`poller.functionhost`) with aiobotocore, one attempt per call."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from poller.awsclients import error_code, http_status
from poller.invokers import InvokeResult

if TYPE_CHECKING:
    from poller.awsclients import AwsClients


class LambdaInvoker:
    def __init__(
        self,
        clients: AwsClients,
        function_name: str,
        *,
        qualifier: str | None = None,
        timeout_seconds: float = 900.0,
        region: str | None = None,
    ) -> None:
        self._clients = clients
        self._function_name = function_name
        self._region = region
        self._timeout = timeout_seconds
        self._kwargs: dict[str, Any] = {
            "FunctionName": function_name,
            "InvocationType": "RequestResponse",
        }
        if qualifier:
            self._kwargs["Qualifier"] = qualifier
        self._client: Any = None

    async def invoke(self, payload: bytes) -> InvokeResult:
        if self._client is None:
            self._client = await self._clients.client("lambda", self._region)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.invoke(Payload=payload, **self._kwargs)
                body: bytes = await response["Payload"].read()
        except ClientError as e:
            meta = e.response.get("ResponseMetadata", {})
            status = http_status(e)
            message = e.response.get("Error", {}).get("Message", "")
            return InvokeResult(
                status=status,
                request_id=str(meta.get("RequestId", "")),
                error=f"{error_code(e) or 'HTTP ' + str(status)}: {message}",
            )
        except TimeoutError:
            return InvokeResult(status=0, error=f"invoke timed out after {self._timeout:g}s")
        except (BotoCoreError, aiohttp.ClientError, OSError) as e:
            return InvokeResult(status=0, error=f"{type(e).__name__}: {e}")
        meta = response.get("ResponseMetadata", {})
        return InvokeResult(
            status=int(response.get("StatusCode", meta.get("HTTPStatusCode", 200))),
            payload=body,
            function_error=response.get("FunctionError"),
            executed_version=response.get("ExecutedVersion") or "$LATEST",
            request_id=str(meta.get("RequestId", "")),
        )

    async def close(self) -> None:
        # the client belongs to AwsClients
        self._client = None
