"""Liveness and readiness for both processes, Prometheus metrics, and serving an ASGI app
beside the main task of a process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

Check = Callable[[], Awaitable[bool]]


def health_routes(checks: Mapping[str, Check]) -> list[Route]:
    """``/healthz`` (the process answers) and ``/readyz``: 200 only when every named check
    passes, 503 otherwise, with each check's result. Checks must be quick; one that raises
    counts as failed. Both processes (``run`` and ``serve``) serve these same routes."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        ready = all(results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]


def health_app(checks: Mapping[str, Check]) -> Starlette:
    """The worker's ``HTTP_PORT``: the health routes and Prometheus ``/metrics``."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[*health_routes(checks), Route("/metrics", metrics)])


class _Server(uvicorn.Server):
    # The application owns SIGTERM/SIGINT (graceful drain); uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, port: int, host: str = "0.0.0.0") -> AsyncIterator[None]:  # noqa: S104
    """Serve ``app`` on the running loop for the duration of the block."""
    # No log_config and no log_level: uvicorn installs no handlers or formatters and sets no
    # levels, so its lines go through the root handler (worker/runtime/logging.py), which
    # renders them like every other line, scrubbed, at the levels configured there.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, log_level=None, lifespan="off"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # bind errors surface here
        yield
    finally:
        server.should_exit = True
        await task
