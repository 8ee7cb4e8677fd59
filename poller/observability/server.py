"""/metrics (Prometheus), /healthz (the loop answers), /readyz (every enabled mapping polls)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from poller.observability.metrics import REGISTRY


class ObservabilityServer:
    def __init__(self, host: str, port: int, readiness: Callable[[], tuple[bool, str]]) -> None:
        self._host = host
        self._port = port
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, detail = self._readiness()
        return web.Response(status=200 if ready else 503, text=detail + "\n")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
