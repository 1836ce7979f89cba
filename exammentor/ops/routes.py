"""Health, readiness and metrics over HTTP, for every process.

``/health`` says the process is alive; ``/ready`` says it can do its work (each dependency
check passes); ``/metrics`` is Prometheus's text format. Workers serve these on their own
small server; the gateway mounts the same routes on its API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from exammentor import __version__

Check = Callable[[], Awaitable[bool]]


class Readiness:
    """Named dependency checks plus a draining flag set at shutdown."""

    def __init__(self, service: str, checks: Mapping[str, Check]) -> None:
        self.service = service
        self.checks = dict(checks)
        self.draining = False

    async def report(self) -> tuple[bool, dict[str, bool]]:
        """Runs every check concurrently; ready when all pass and not draining."""
        names = list(self.checks)
        results = await asyncio.gather(*(self.checks[n]() for n in names))
        status = dict(zip(names, results, strict=True))
        return (all(results) and not self.draining), status


def ops_routes(readiness: Readiness) -> list[Route]:
    """The /health, /ready and /metrics routes."""

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True, "service": readiness.service, "version": __version__})

    async def ready(_: Request) -> Response:
        ok, checks = await readiness.report()
        body = {"ready": ok, "service": readiness.service, "checks": checks}
        if readiness.draining:
            body["draining"] = True
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/health", health), Route("/ready", ready), Route("/metrics", metrics)]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that handles its own signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """Runs an ASGI app with uvicorn as a task of the current event loop."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        # httptools: uvicorn's C parser, a fraction of h11's cost per request and per
        # streamed write.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http="httptools",
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts serving and waits until the socket listens."""
        self._task = asyncio.create_task(self._server.serve(), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the start-up error
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        """The port actually bound (useful when configured as 0)."""
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stops accepting, finishes open requests, returns when stopped."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task


def ops_server(readiness: Readiness, host: str, port: int) -> HttpServer:
    """A small HTTP server serving only the ops routes."""
    return HttpServer(Starlette(routes=ops_routes(readiness)), host, port)
