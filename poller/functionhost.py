"""A small server speaking Lambda's Invoke API that runs Python handlers.

It stands in for AWS Lambda in tests and the demo: real HTTP, usable with the real aiobotocore
``lambda`` client (``endpoint_url`` = :attr:`FunctionHost.endpoint`)::

    host = FunctionHost("tests.functions.echo:handler", concurrency=10)
    await host.start()
    ... create_client("lambda", endpoint_url=host.endpoint) ...
    await host.stop()

or from the shell: ``poller functionhost --handler pkg.mod:fn --port 9000``.

Implemented: ``POST /2015-03-31/functions/{FunctionName}/invocations`` (``Qualifier`` query
parameter, ``X-Amz-Invocation-Type`` RequestResponse / Event / DryRun), AWS's responses for
success, function errors (``X-Amz-Function-Error: Unhandled``), reserved-concurrency throttling
(429), payloads over 6 MB (413), non-JSON payloads (400) and unknown functions (404).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from poller.invokers.local import (
    Handler,
    LambdaContext,
    function_name_from_arn,
    load_handler,
    parse_event,
    run_handler,
)
from poller.loop import run as run_loop

log = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD = 6_291_456  # bytes, Lambda's RequestResponse request limit
INVOKE_PATH = "/2015-03-31/functions/{function_name}/invocations"


def _error(status: int, error_type: str, body: dict[str, Any],
           request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id},
    )


class FunctionHost:
    """Serves one handler under any function name, or several handlers by name.

    ``functions`` maps function names to handlers (callables or ``"pkg.mod:fn"`` strings); a
    name not in it is served by ``handler`` if given, else answered with 404.
    ``concurrency`` is the reserved concurrency: more invocations in flight than that get 429.
    """

    def __init__(
        self,
        handler: Handler | str | None = None,
        *,
        functions: dict[str, Handler | str] | None = None,
        concurrency: int = 1000,
        timeout_seconds: float = 900.0,
        memory_limit_in_mb: int = 128,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        shutdown_timeout: float = 5.0,
    ) -> None:
        if handler is None and not functions:
            raise ValueError("FunctionHost needs a handler or a functions mapping")
        self._default = load_handler(handler) if isinstance(handler, str) else handler
        self._functions: dict[str, Handler] = {
            name: load_handler(h) if isinstance(h, str) else h
            for name, h in (functions or {}).items()
        }
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb
        self.region = region
        self.account_id = account_id
        self.shutdown_timeout = shutdown_timeout  # stop(): grace for in-flight invocations
        self.invocations = 0  # handler runs started
        self.throttles = 0  # requests answered with 429
        self.in_flight = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._host = "127.0.0.1"
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        if self._runner is None:
            raise RuntimeError("FunctionHost is not started")
        return f"http://{self._host}:{self._port}"

    def app(self) -> web.Application:
        # The 6 MB limit is answered by the handler (with AWS's error); aiohttp's own limit is
        # only a guard against absurd bodies.
        app = web.Application(client_max_size=4 * MAX_SYNC_PAYLOAD)
        app.router.add_post(INVOKE_PATH, self._invoke)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(self.concurrency, 256)), thread_name_prefix="functionhost")
        self._runner = web.AppRunner(self.app(), access_log=None,
                                    shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        self._host = host
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def __aenter__(self) -> FunctionHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _resolve(self, name_in_path: str) -> tuple[str, Handler | None]:
        name = function_name_from_arn(name_in_path)
        handler = self._functions.get(name, self._default)
        return name, handler

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = None
        if body is None or len(body) > MAX_SYNC_PAYLOAD:
            size = len(body) if body is not None else request.content_length
            return _error(413, "RequestEntityTooLargeException", {
                "Type": "User",
                "message": f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the "
                           f"InvokeFunction operation (got {size})",
            }, request_id)

        name, handler = self._resolve(request.match_info["function_name"])
        qualifier = request.query.get("Qualifier")
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        if handler is None:
            return _error(404, "ResourceNotFoundException", {
                "Type": "User", "Message": f"Function not found: {arn}",
            }, request_id)
        if qualifier:
            arn = f"{arn}:{qualifier}"
        version = qualifier if qualifier and qualifier.isdigit() else "$LATEST"

        try:
            event = parse_event(body) if body else {}
        except ValueError as e:
            return _error(400, "InvalidRequestContentException", {
                "Type": "User",
                "message": f"Could not parse request body into json: {e}",
            }, request_id)

        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return web.Response(status=204, headers={"x-amzn-RequestId": request_id})

        if self.in_flight >= self.concurrency:
            self.throttles += 1
            return _error(429, "TooManyRequestsException", {
                "Type": "User",
                "message": "Rate Exceeded.",
                "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
            }, request_id)

        context = LambdaContext(
            function_name=name,
            invoked_function_arn=arn,
            aws_request_id=request_id,
            deadline=time.monotonic() + self.timeout_seconds,
            function_version=version,
            memory_limit_in_mb=self.memory_limit_in_mb,
        )
        self.in_flight += 1
        self.invocations += 1
        if invocation_type == "Event":
            task = asyncio.create_task(self._run_detached(handler, event, context))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        try:
            result = await run_handler(handler, event, context,
                                       function_timeout=self.timeout_seconds,
                                       executor=self._executor)
        finally:
            self.in_flight -= 1
        headers = {"X-Amz-Executed-Version": version, "x-amzn-RequestId": request_id}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
            log.debug("function %s failed (request %s)", name, request_id)
        return web.Response(status=200, body=result.payload, content_type="application/json",
                            headers=headers)

    async def _run_detached(self, handler: Handler, event: Any, context: LambdaContext) -> None:
        try:
            await run_handler(handler, event, context, function_timeout=self.timeout_seconds,
                              executor=self._executor)
        finally:
            self.in_flight -= 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``functionhost`` to an argparse sub-command set (``poller functionhost``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "functionhost",
        help="serve Python handlers over Lambda's Invoke API",
        description="Serve Python Lambda handlers over Lambda's Invoke API (a local stand-in "
                    "for AWS Lambda).",
    )
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--handler", help="handler served under any function name: pkg.module:fn")
    p.add_argument("--function", action="append", default=[], metavar="NAME=pkg.module:fn",
                   help="a handler for one function name (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    p.add_argument("--concurrency", type=int, default=1000,
                   help="reserved concurrency: more in-flight invocations get 429")
    p.add_argument("--timeout", type=float, default=900.0, help="function timeout in seconds")
    p.add_argument("--memory", type=int, default=128, help="context.memory_limit_in_mb")


def run(args: argparse.Namespace) -> int:
    functions: dict[str, Handler | str] = {}
    for item in args.function:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            print(f"--function {item!r}: expected NAME=pkg.module:fn", file=sys.stderr)
            return 2
        functions[name] = path
    if not args.handler and not functions:
        print("functionhost: give --handler or --function", file=sys.stderr)
        return 2
    try:
        host = FunctionHost(args.handler, functions=functions, concurrency=args.concurrency,
                            timeout_seconds=args.timeout, memory_limit_in_mb=args.memory)
    except ValueError as e:
        print(f"functionhost: {e}", file=sys.stderr)
        return 2

    async def serve() -> None:
        await host.start(args.host, args.port)
        print(f"functionhost listening on {host.endpoint}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await host.stop()

    run_loop(serve())
    return 0


def main_functionhost(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="poller functionhost")
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_functionhost())
