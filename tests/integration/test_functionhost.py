"""The function host answers the real aiobotocore Lambda client the way AWS Lambda does."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from poller.awsclients import AwsClients
from poller.config_model import AwsConfig
from poller.functionhost import MAX_SYNC_PAYLOAD, FunctionHost
from poller.invokers import Outcome
from poller.invokers.lambda_ import LambdaInvoker
from tests.functions import echo
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def describe_context(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def returns_none(event: Any, context: Any) -> None:
    return None


def raises(event: Any, context: Any) -> None:
    raise KeyError("no such order")


def returns_set(event: Any, context: Any) -> Any:
    return {1, 2}


class Gate:
    """Holds ``gated`` invocations until the test opens it (one asyncio.Event per test loop)."""

    event: asyncio.Event | None = None


async def gated(event: Any, context: Any) -> str:
    assert Gate.event is not None
    await Gate.event.wait()
    return "released"


THREAD_GATE = threading.Event()


def blocking(event: Any, context: Any) -> str:
    THREAD_GATE.wait(30)
    return "unblocked"


async def sleeps(event: Any, context: Any) -> None:
    await asyncio.sleep(30)


FUNCTIONS: dict[str, Any] = {
    "ctx": describe_context,
    "none": returns_none,
    "boom": raises,
    "marshal": returns_set,
    "gated": gated,
    "blocking": blocking,
    "echo": echo.handler,
}


@pytest.fixture
async def host() -> AsyncIterator[FunctionHost]:
    h = FunctionHost(functions=FUNCTIONS, concurrency=2, memory_limit_in_mb=256,
                     region="eu-west-1", account_id="111122223333")
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def gate() -> asyncio.Event:
    Gate.event = asyncio.Event()
    return Gate.event


@pytest.fixture
async def lambda_client(host: FunctionHost) -> AsyncIterator[Any]:
    async with AwsClients(AwsConfig(region="eu-west-1", endpoint_url=host.endpoint)) as clients:
        yield await clients.client("lambda")


async def invoke(client: Any, name: str, payload: bytes = b"{}", **kwargs: Any) -> tuple[
        dict[str, Any], bytes]:
    response = await client.invoke(FunctionName=name, Payload=payload, **kwargs)
    return response, await response["Payload"].read()


async def test_success_returns_the_json_of_the_return_value(lambda_client: Any) -> None:
    response, body = await invoke(lambda_client, "ctx", b'{"Records": [{"n": 1}]}')
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    result = json.loads(body)
    assert result["event"] == {"Records": [{"n": 1}]}
    assert result["function_name"] == "ctx"
    assert result["function_version"] == "$LATEST"
    assert result["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:111122223333:function:ctx"
    assert result["memory_limit_in_mb"] == "256"
    assert result["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert result["log_group_name"] == "/aws/lambda/ctx"
    assert "[$LATEST]" in result["log_stream_name"]
    assert 0 < result["remaining_ms"] <= 900_000


async def test_function_arn_in_the_path_selects_the_function(lambda_client: Any) -> None:
    _, body = await invoke(lambda_client, "arn:aws:lambda:eu-west-1:111122223333:function:ctx")
    assert json.loads(body)["function_name"] == "ctx"


async def test_none_return_is_null(lambda_client: Any) -> None:
    response, body = await invoke(lambda_client, "none")
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert body == b"null"


async def test_exception_is_an_unhandled_function_error(lambda_client: Any) -> None:
    response, body = await invoke(lambda_client, "boom")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(body)
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'no such order'"
    assert error["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert any("in raises" in frame for frame in error["stackTrace"])
    assert not any("poller/invokers/local.py" in frame for frame in error["stackTrace"])


async def test_unserializable_result_is_a_marshal_error(lambda_client: Any) -> None:
    response, body = await invoke(lambda_client, "marshal")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorType"] == "Runtime.MarshalError"


async def test_more_in_flight_than_concurrency_is_throttled(host: FunctionHost,
                                                            gate: asyncio.Event) -> None:
    async with AwsClients(AwsConfig(endpoint_url=host.endpoint)) as clients:
        invoker = LambdaInvoker(clients, "gated")
        first = [asyncio.create_task(invoker.invoke(b"{}")) for _ in range(2)]
        await wait_for(lambda: host.in_flight == 2, timeout=10)

        throttled = await invoker.invoke(b"{}")
        assert throttled.status == 429
        assert throttled.outcome is Outcome.THROTTLED
        assert throttled.error is not None and "TooManyRequestsException" in throttled.error
        assert throttled.payload == b""
        assert host.throttles == 1

        client = await clients.client("lambda")
        with pytest.raises(ClientError) as raised:
            await client.invoke(FunctionName="gated", Payload=b"{}")
        assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429

        gate.set()
        results = await asyncio.gather(*first)
        assert [(r.outcome, r.payload) for r in results] == [(Outcome.OK, b'"released"')] * 2
        assert host.in_flight == 0
        assert (await invoker.invoke(b"{}")).outcome is Outcome.OK


async def test_throttle_body_names_the_reason(host: FunctionHost, gate: asyncio.Event) -> None:
    import aiohttp

    url = f"{host.endpoint}/2015-03-31/functions/gated/invocations"
    async with aiohttp.ClientSession() as session:
        async def post() -> int:
            async with session.post(url, data=b"{}") as response:
                return response.status

        first = [asyncio.create_task(post()) for _ in range(2)]
        await wait_for(lambda: host.in_flight == 2, timeout=10)
        async with session.post(url, data=b"{}") as response:
            assert response.status == 429
            assert response.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
            assert await response.json() == {
                "Type": "User", "message": "Rate Exceeded.",
                "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}
        gate.set()
        assert await asyncio.gather(*first) == [200, 200]


async def test_payload_over_6_mb_is_413(host: FunctionHost, lambda_client: Any) -> None:
    overhead = len(b'{"pad":""}')
    at_limit = b'{"pad":"' + b"x" * (MAX_SYNC_PAYLOAD - overhead) + b'"}'
    assert len(at_limit) == MAX_SYNC_PAYLOAD
    response, body = await invoke(lambda_client, "none", at_limit)
    assert response["StatusCode"] == 200 and body == b"null"

    with pytest.raises(ClientError) as raised:
        await invoke(lambda_client, "none", at_limit[:-2] + b'x"}')
    assert raised.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert host.invocations == 1

    async with AwsClients(AwsConfig(endpoint_url=host.endpoint)) as clients:
        result = await LambdaInvoker(clients, "none").invoke(at_limit[:-2] + b'x"}')
    assert result.outcome is Outcome.TOO_LARGE


async def test_qualifier_sets_arn_and_executed_version(lambda_client: Any) -> None:
    response, body = await invoke(lambda_client, "ctx", Qualifier="7")
    assert response["ExecutedVersion"] == "7"
    result = json.loads(body)
    assert result["invoked_function_arn"].endswith(":function:ctx:7")
    assert result["function_version"] == "7"

    response, body = await invoke(lambda_client, "ctx", Qualifier="live")
    assert response["ExecutedVersion"] == "$LATEST"
    assert json.loads(body)["invoked_function_arn"].endswith(":function:ctx:live")


async def test_non_json_payload_is_400(host: FunctionHost, lambda_client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        await invoke(lambda_client, "echo", b"not json")
    assert raised.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert host.invocations == 0


async def test_unknown_function_is_404_when_only_named_functions_are_served(
        lambda_client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        await invoke(lambda_client, "nope")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_default_handler_serves_any_name() -> None:
    async with FunctionHost(describe_context) as host, AwsClients(
            AwsConfig(endpoint_url=host.endpoint)) as clients:
        client = await clients.client("lambda")
        for name in ("a", "some-other-function"):
            _, body = await invoke(client, name)
            assert json.loads(body)["function_name"] == name


async def test_sync_handlers_do_not_block_the_server(host: FunctionHost,
                                                     lambda_client: Any) -> None:
    THREAD_GATE.clear()
    echo.reset()
    blocked = asyncio.create_task(invoke(lambda_client, "blocking"))
    await wait_for(lambda: host.in_flight == 1, timeout=10)
    _, body = await invoke(lambda_client, "echo", b'{"k": "v"}')
    assert body == b"null"
    assert echo.EVENTS == [{"k": "v"}]
    assert not blocked.done()
    THREAD_GATE.set()
    _, body = await blocked
    assert body == b'"unblocked"'


async def test_function_timeout_is_an_unhandled_error() -> None:
    async with FunctionHost(sleeps, timeout_seconds=0.2) as host, AwsClients(
            AwsConfig(endpoint_url=host.endpoint)) as clients:
        result = await LambdaInvoker(clients, "slow").invoke(b"{}")
    assert result.outcome is Outcome.FUNCTION_ERROR
    error = json.loads(result.payload)
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.20 seconds" in error["errorMessage"]


async def test_event_invocation_returns_202_and_runs_the_handler(lambda_client: Any) -> None:
    echo.reset()
    response, body = await invoke(lambda_client, "echo", b'{"async": true}',
                                  InvocationType="Event")
    assert response["StatusCode"] == 202
    assert body == b""
    await wait_for(lambda: echo.EVENTS == [{"async": True}], timeout=10)


async def test_command_line_function_host(tmp_path: Path) -> None:
    record_file = tmp_path / "events.jsonl"
    env = {**os.environ, "FN_RECORD_FILE": str(record_file),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "poller.functionhost", "--handler", "tests.functions.echo:handler",
        "--port", "0", "--concurrency", "5",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("functionhost listening on http://127.0.0.1:"), line
        endpoint = line.rsplit(" ", 1)[1].strip()
        async with AwsClients(AwsConfig(endpoint_url=endpoint)) as clients:
            result = await LambdaInvoker(clients, "any-name").invoke(b'{"Records": []}')
        assert result.outcome is Outcome.OK and result.payload == b"null"
        assert echo.read_record_file(str(record_file)) == [{"Records": []}]
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0


def test_command_line_rejects_a_missing_handler() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "poller.functionhost", "--handler", "tests.functions.nope:handler",
         "--port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "tests.functions.nope:handler" in done.stderr
