"""The three invokers against real endpoints: the function host, a small aiohttp app, and
handlers in this process. Each maps what happened to the same InvokeResult/Outcome."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from poller.awsclients import AwsClients
from poller.config_model import AwsConfig, Mapping, ServiceEndpoint, Target
from poller.functionhost import FunctionHost
from poller.invokers import InvokeResult, Outcome
from poller.invokers.factory import make_invoker
from poller.invokers.http import HttpInvoker
from poller.invokers.lambda_ import LambdaInvoker
from poller.invokers.local import LocalInvoker
from tests.functions import echo, fail_on, partial, slow
from tests.helpers import b64

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
SECRET = b'{"Records": [{"kinesis": {"data": "c2VjcmV0LXBheWxvYWQ="}}]}'


def kinesis_event(*datas: bytes) -> bytes:
    return json.dumps({"Records": [
        {"kinesis": {"data": b64(d), "sequenceNumber": str(100 + i), "partitionKey": "k"}}
        for i, d in enumerate(datas)]}).encode()


def mapping(target: Target, function_name: str = "fn") -> Mapping:
    return Mapping(uuid="m-1", event_source_arn=STREAM_ARN, function_name=function_name,
                   target=target)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def host() -> AsyncIterator[FunctionHost]:
    fail_on.reset()
    async with FunctionHost(functions={
        "fail-on": fail_on.handler, "partial": partial.handler, "echo": echo.handler,
        "slow": slow.async_handler,
    }) as h:
        yield h


@pytest.fixture
async def clients(host: FunctionHost) -> AsyncIterator[AwsClients]:
    aws = AwsConfig(endpoint_url="http://127.0.0.1:1",  # other services: never used here
                    services={"lambda": ServiceEndpoint(endpoint_url=host.endpoint)})
    async with AwsClients(aws) as c:
        yield c


# --- Lambda (aiobotocore) ------------------------------------------------------------------------


async def test_lambda_invoker_ok_and_function_error(clients: AwsClients,
                                                    host: FunctionHost) -> None:
    invoker = make_invoker(mapping(Target(type="lambda"), "fail-on"), clients)
    assert isinstance(invoker, LambdaInvoker)
    ok = await invoker.invoke(kinesis_event(b"fine", b"also fine"))
    assert ok.outcome is Outcome.OK
    assert (ok.status, ok.payload, ok.function_error, ok.executed_version) == (
        200, b"null", None, "$LATEST")
    assert ok.request_id

    failed = await invoker.invoke(kinesis_event(b"fine", b"poison pill"))
    assert failed.outcome is Outcome.FUNCTION_ERROR
    assert failed.function_error == "Unhandled"
    error = json.loads(failed.payload)
    assert error["errorType"] == "PoisonRecordError"
    assert error["requestId"] == failed.request_id
    assert len(fail_on.EVENTS) == 2
    await invoker.close()


async def test_lambda_invoker_returns_the_response_payload(clients: AwsClients) -> None:
    invoker = make_invoker(mapping(Target(type="lambda"), "partial"), clients)
    result = await invoker.invoke(kinesis_event(b"ok", b"fail me", b"ok"))
    assert result.outcome is Outcome.OK
    assert json.loads(result.payload) == {"batchItemFailures": [{"itemIdentifier": "101"}]}


async def test_lambda_invoker_passes_the_qualifier(clients: AwsClients) -> None:
    invoker = make_invoker(mapping(Target(type="lambda", qualifier="3"), "echo"), clients)
    result = await invoker.invoke(b"{}")
    assert result.outcome is Outcome.OK
    assert result.executed_version == "3"


async def test_lambda_invoker_unknown_function_is_a_retryable_error(clients: AwsClients) -> None:
    result = await LambdaInvoker(clients, "missing").invoke(SECRET)
    assert result.status == 404
    assert result.outcome is Outcome.ERROR
    assert result.error is not None and result.error.startswith("ResourceNotFoundException")
    assert b"secret" not in result.error.encode()
    assert result.payload == b""


async def test_lambda_invoker_connection_refused_is_status_0() -> None:
    aws = AwsConfig(endpoint_url=f"http://127.0.0.1:{closed_port()}")
    async with AwsClients(aws, connect_timeout=2) as clients:
        result = await LambdaInvoker(clients, "fn").invoke(SECRET)
    assert result.status == 0
    assert result.outcome is Outcome.ERROR
    assert result.error and "secret" not in result.error


async def test_lambda_invoker_times_out_after_target_timeout(
        clients: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slow, "DELAY", 1.0)
    invoker = make_invoker(mapping(Target(type="lambda", timeout_seconds=0.3), "slow"), clients)
    result = await invoker.invoke(b"{}")
    assert result.status == 0
    assert result.outcome is Outcome.ERROR
    assert result.error == "invoke timed out after 0.3s"


# --- HTTP ----------------------------------------------------------------------------------------


class TinyApp:
    """An HTTP target whose answer is chosen per path: /ok, /fn-error, /status/<n>, /slow."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.path, dict(request.headers), body))
        path = request.path
        if path == "/ok":
            return web.json_response({"echo": json.loads(body)},
                                     headers={"X-Request-Id": "req-1"})
        if path == "/fn-error":
            return web.json_response({"errorMessage": "boom", "errorType": "Error"},
                                     headers={"X-Amz-Function-Error": "Unhandled"})
        if path.startswith("/status/"):
            return web.Response(status=int(path.rsplit("/", 1)[1]), text="server said no")
        if path == "/slow":
            await self.release.wait()
        return web.Response(status=404)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def tiny() -> AsyncIterator[TinyApp]:
    app = TinyApp()
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_http_invoker_posts_the_payload_with_headers(tiny: TinyApp) -> None:
    invoker = make_invoker(mapping(Target(type="http", url=tiny.url + "/ok",
                                          headers={"Authorization": "Bearer t"})), None)  # type: ignore[arg-type]
    assert isinstance(invoker, HttpInvoker)
    try:
        result = await invoker.invoke(b'{"Records": [1]}')
        again = await invoker.invoke(b'{"Records": [2]}')
    finally:
        await invoker.close()
    assert result.outcome is Outcome.OK
    assert json.loads(result.payload) == {"echo": {"Records": [1]}}
    assert result.request_id == "req-1"
    assert again.outcome is Outcome.OK
    path, headers, body = tiny.requests[0]
    assert (path, body) == ("/ok", b'{"Records": [1]}')
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer t"


async def test_http_invoker_function_error_header(tiny: TinyApp) -> None:
    invoker = HttpInvoker(tiny.url + "/fn-error")
    try:
        result = await invoker.invoke(b"{}")
    finally:
        await invoker.close()
    assert result.outcome is Outcome.FUNCTION_ERROR
    assert result.function_error == "Unhandled"
    assert json.loads(result.payload)["errorMessage"] == "boom"


@pytest.mark.parametrize(("status", "outcome"), [
    (500, Outcome.ERROR), (503, Outcome.ERROR), (429, Outcome.THROTTLED),
    (413, Outcome.TOO_LARGE), (404, Outcome.ERROR), (204, Outcome.OK),
])
async def test_http_invoker_maps_status(tiny: TinyApp, status: int, outcome: Outcome) -> None:
    invoker = HttpInvoker(f"{tiny.url}/status/{status}")
    try:
        result = await invoker.invoke(SECRET)
    finally:
        await invoker.close()
    assert result.status == status
    assert result.outcome is outcome
    if status >= 300:
        assert result.error is not None and result.error.startswith(f"HTTP {status}")
        assert "server said no" not in result.error and result.payload == b""


async def test_http_invoker_against_the_function_host(host: FunctionHost) -> None:
    invoker = HttpInvoker(f"{host.endpoint}/2015-03-31/functions/fail-on/invocations")
    try:
        ok = await invoker.invoke(kinesis_event(b"fine"))
        failed = await invoker.invoke(kinesis_event(b"poison"))
    finally:
        await invoker.close()
    assert ok.outcome is Outcome.OK and ok.payload == b"null" and ok.request_id
    assert failed.outcome is Outcome.FUNCTION_ERROR
    assert json.loads(failed.payload)["errorType"] == "PoisonRecordError"


async def test_http_invoker_timeout_and_refused(tiny: TinyApp) -> None:
    invoker = HttpInvoker(tiny.url + "/slow", timeout_seconds=0.3)
    refused = HttpInvoker(f"http://127.0.0.1:{closed_port()}/")
    try:
        timed_out = await invoker.invoke(b"{}")
        no_server = await refused.invoke(SECRET)
    finally:
        await invoker.close()
        await refused.close()
    assert (timed_out.status, timed_out.outcome) == (0, Outcome.ERROR)
    assert timed_out.error is not None and "timed out" in timed_out.error
    assert (no_server.status, no_server.outcome) == (0, Outcome.ERROR)
    assert no_server.error and "secret" not in no_server.error


# --- local (in-process) --------------------------------------------------------------------------


async def run_local(handler: str, payload: bytes, **kwargs: Any) -> InvokeResult:
    invoker = make_invoker(mapping(Target(type="python", handler=handler, **kwargs)), None)  # type: ignore[arg-type]
    assert isinstance(invoker, LocalInvoker)
    try:
        return await invoker.invoke(payload)
    finally:
        await invoker.close()


@pytest.mark.parametrize("handler", ["tests.functions.echo:handler",
                                     "tests.functions.echo:async_handler"])
async def test_local_invoker_sync_and_async(handler: str) -> None:
    echo.reset()
    result = await run_local(handler, b'{"Records": ["r"]}')
    assert result.outcome is Outcome.OK
    assert (result.status, result.payload) == (200, b"null")
    assert echo.EVENTS == [{"Records": ["r"]}]


async def test_local_invoker_return_value() -> None:
    result = await run_local("tests.functions.partial:handler", kinesis_event(b"fail", b"ok"))
    assert json.loads(result.payload) == {"batchItemFailures": [{"itemIdentifier": "100"}]}


async def test_local_invoker_exception_is_unhandled_error_json() -> None:
    result = await run_local("tests.functions.fail_on:handler", kinesis_event(b"poison"))
    assert result.status == 200
    assert result.outcome is Outcome.FUNCTION_ERROR
    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert error["errorType"] == "PoisonRecordError"
    assert error["errorMessage"] == "poison record in a batch of 1"
    assert error["requestId"] == result.request_id
    assert any("fail_on.py" in frame for frame in error["stackTrace"])


async def test_local_invoker_function_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slow, "DELAY", 1.0)
    result = await run_local("tests.functions.slow:async_handler", b"{}", timeout_seconds=0.2)
    assert result.outcome is Outcome.FUNCTION_ERROR
    assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"


async def test_local_invoker_context_names_the_function() -> None:
    seen: list[Any] = []

    def handler(event: Any, context: Any) -> str:
        seen.append(context)
        return str(context.invoked_function_arn)

    invoker = LocalInvoker(handler, function_arn="arn:aws:lambda:eu-west-1:1:function:orders")
    try:
        result = await invoker.invoke(b"{}")
    finally:
        await invoker.close()
    assert json.loads(result.payload) == "arn:aws:lambda:eu-west-1:1:function:orders"
    assert seen[0].function_name == "orders"
    assert seen[0].aws_request_id == result.request_id


def test_make_invoker_rejects_incomplete_targets() -> None:
    with pytest.raises(ValueError, match="needs a url"):
        make_invoker(mapping(Target(type="http")), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a handler"):
        make_invoker(mapping(Target(type="python")), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tests\.functions\.missing"):
        make_invoker(mapping(Target(type="python", handler="tests.functions.missing:h")),
                     None)  # type: ignore[arg-type]
