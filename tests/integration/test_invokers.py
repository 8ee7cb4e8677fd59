"""The three invokers against real endpoints: the function host, a small aiohttp app, and
handlers in this process. Each maps what happened to the same InvokeResult/Outcome."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp import web

from poller.awsclients import AwsClients
from poller.config_model import AwsConfig, LambdaClient, Mapping, ServiceEndpoint, Target
from poller.functionhost import FunctionHost
from poller.invokers import InvokeResult, Outcome
from poller.invokers.factory import make_invoker
from poller.invokers.http import HttpInvoker
from poller.invokers.lambda_ import LambdaInvoker
from poller.invokers.lambda_fast import FastLambdaInvoker
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


# --- Lambda (fast signed aiohttp, and aiobotocore): the same cases, the same results ------------

INVOKER_CLASSES = {"fast": FastLambdaInvoker, "aiobotocore": LambdaInvoker}


@pytest.fixture(params=["fast", "aiobotocore"])
def client(request: pytest.FixtureRequest) -> LambdaClient:
    return cast(LambdaClient, request.param)


def lambda_target(client: LambdaClient, **kw: Any) -> Target:
    return Target(type="lambda", client=client, **kw)


async def test_lambda_invoker_ok_and_function_error(clients: AwsClients, host: FunctionHost,
                                                    client: LambdaClient) -> None:
    invoker = make_invoker(mapping(lambda_target(client), "fail-on"), clients)
    assert isinstance(invoker, INVOKER_CLASSES[client])
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


async def test_lambda_invoker_returns_the_response_payload(clients: AwsClients,
                                                          client: LambdaClient) -> None:
    invoker = make_invoker(mapping(lambda_target(client), "partial"), clients)
    result = await invoker.invoke(kinesis_event(b"ok", b"fail me", b"ok"))
    assert result.outcome is Outcome.OK
    assert json.loads(result.payload) == {"batchItemFailures": [{"itemIdentifier": "101"}]}
    await invoker.close()


async def test_lambda_invoker_passes_the_qualifier(clients: AwsClients,
                                                   client: LambdaClient) -> None:
    invoker = make_invoker(mapping(lambda_target(client, qualifier="3"), "echo"), clients)
    result = await invoker.invoke(b"{}")
    assert result.outcome is Outcome.OK
    assert result.executed_version == "3"
    await invoker.close()


async def test_lambda_invoker_unknown_function_is_a_retryable_error(
        clients: AwsClients, client: LambdaClient) -> None:
    invoker = make_invoker(mapping(lambda_target(client), "missing"), clients)
    result = await invoker.invoke(SECRET)
    await invoker.close()
    assert result.status == 404
    assert result.outcome is Outcome.ERROR
    assert result.error is not None and result.error.startswith("ResourceNotFoundException: ")
    assert "Function not found" in result.error
    assert result.request_id
    assert b"secret" not in result.error.encode()
    assert result.payload == b""


@pytest.mark.parametrize(("body", "status", "outcome"), [
    (b"{}", 413, Outcome.TOO_LARGE),
    (b"not json", 400, Outcome.ERROR),
])
async def test_lambda_invoker_maps_request_errors(clients: AwsClients, client: LambdaClient,
                                                  monkeypatch: pytest.MonkeyPatch, body: bytes,
                                                  status: int, outcome: Outcome) -> None:
    if status == 413:
        monkeypatch.setattr("poller.functionhost.MAX_SYNC_PAYLOAD", 1)
    invoker = make_invoker(mapping(lambda_target(client), "echo"), clients)
    result = await invoker.invoke(body)
    await invoker.close()
    assert (result.status, result.outcome) == (status, outcome)
    code = {413: "RequestEntityTooLargeException", 400: "InvalidRequestContentException"}[status]
    assert result.error is not None and result.error.startswith(code + ": ")


async def test_lambda_invoker_throttle_is_429(host: FunctionHost, clients: AwsClients,
                                              client: LambdaClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "concurrency", 0)
    invoker = make_invoker(mapping(lambda_target(client), "echo"), clients)
    result = await invoker.invoke(b"{}")
    await invoker.close()
    assert (result.status, result.outcome) == (429, Outcome.THROTTLED)
    assert result.error == "TooManyRequestsException: Rate Exceeded."


async def test_lambda_invoker_5xx_without_json_is_a_retryable_error(client: LambdaClient) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        aws = AwsConfig(endpoint_url=f"http://127.0.0.1:{port}")
        async with AwsClients(aws) as clients:
            invoker = make_invoker(mapping(lambda_target(client), "fn"), clients)
            result = await invoker.invoke(b"{}")
            await invoker.close()
    finally:
        await runner.cleanup()
    assert (result.status, result.outcome) == (502, Outcome.ERROR)
    assert result.error == "502: Bad Gateway"


async def test_lambda_invoker_connection_refused_is_status_0(client: LambdaClient) -> None:
    aws = AwsConfig(endpoint_url=f"http://127.0.0.1:{closed_port()}")
    async with AwsClients(aws, connect_timeout=2) as clients:
        invoker = make_invoker(mapping(lambda_target(client), "fn"), clients)
        result = await invoker.invoke(SECRET)
        await invoker.close()
    assert result.status == 0
    assert result.outcome is Outcome.ERROR
    assert result.error and "secret" not in result.error


async def test_lambda_invoker_times_out_after_target_timeout(
        clients: AwsClients, client: LambdaClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slow, "DELAY", 1.0)
    invoker = make_invoker(mapping(lambda_target(client, timeout_seconds=0.3), "slow"), clients)
    result = await invoker.invoke(b"{}")
    await invoker.close()
    assert result.status == 0
    assert result.outcome is Outcome.ERROR
    assert result.error == "invoke timed out after 0.3s"


async def test_lambda_invokers_send_the_same_signed_request_on_one_connection() -> None:
    seen: list[tuple[str, dict[str, str], int]] = []

    async def record(request: web.Request) -> web.Response:
        await request.read()
        seen.append((request.raw_path, dict(request.headers),
                     id(request.transport)))
        return web.Response(status=200, body=b"null", headers={"x-amzn-RequestId": "r-1"})

    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:fn"
    try:
        aws = AwsConfig(endpoint_url=f"http://127.0.0.1:{port}", access_key_id="AKIDEXAMPLE",
                        secret_access_key="s3cr3t")
        for client in ("fast", "aiobotocore"):
            async with AwsClients(aws) as clients:
                invoker = make_invoker(
                    mapping(lambda_target(client, qualifier="live"), arn),
                    clients)
                for _ in range(3):
                    assert (await invoker.invoke(b"{}")).request_id == "r-1"
                await invoker.close()
    finally:
        await runner.cleanup()
    fast, slow_ = seen[:3], seen[3:]
    assert len({transport for _, _, transport in fast}) == 1, "a new connection per invoke"
    assert fast[0][0] == slow_[0][0] == (
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012"
        "%3Afunction%3Afn/invocations?Qualifier=live")
    for (_, headers, _), (_, reference, _) in zip(fast, slow_, strict=True):
        assert headers["X-Amz-Invocation-Type"] == reference["X-Amz-Invocation-Type"]
        auth, ref = (h["Authorization"].split(", ") for h in (headers, reference))
        assert auth[0].split("/", 1)[1] == ref[0].split("/", 1)[1]  # date/region/service scope
        assert auth[0].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/lambda/aws4_request" in auth[0]
        assert set(auth[1].removeprefix("SignedHeaders=").split(";")) <= set(
            ref[1].removeprefix("SignedHeaders=").split(";"))
        assert "s3cr3t" not in json.dumps(headers)


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
