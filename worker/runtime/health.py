"""Liveness and readiness for both processes, Prometheus metrics, and serving an ASGI app
beside the main task of a process.

``/healthz`` answers 503 only when a restart would help: the worker's consume loop has made no
progress for ``LIVENESS_STALL_SECONDS`` while it has work, and no dependency is known down (a
restart cures no outage; ``/readyz`` reports those). Idle with nothing to do is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from structlog.stdlib import get_logger

log = get_logger("worker.runtime.health")

Check = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Liveness:
    alive: bool
    detail: Mapping[str, object] = field(default_factory=dict)  # shown in /healthz's body


LivenessCheck = Callable[[], Liveness]


def stall_liveness(
    *,
    progress_age_seconds: float,
    has_work: bool,
    stall_seconds: float,
    dependencies_down: Sequence[str],
    detail: Mapping[str, object] | None = None,
) -> Liveness:
    """The consume loop's liveness: dead when it has work and has made no progress for longer
    than ``stall_seconds``, unless a dependency is known down (then it is waiting, rightly)."""
    stalled = has_work and progress_age_seconds > stall_seconds
    facts: dict[str, object] = {
        "progress_age_seconds": round(progress_age_seconds, 1),
        "stall_seconds": stall_seconds,
        "has_work": has_work,
        **(detail or {}),
    }
    if stalled and dependencies_down:
        facts["waiting_for"] = list(dependencies_down)
    return Liveness(alive=not stalled or bool(dependencies_down), detail=facts)


def health_routes(
    checks: Mapping[str, Check], liveness: LivenessCheck | None = None
) -> list[Route]:
    """``/healthz`` and ``/readyz``: 200 only when every named check passes, 503 otherwise,
    with each check's result. Checks must be quick; one that raises counts as failed.
    ``/healthz`` answers 200 while the process answers and ``liveness`` (when given) says
    alive, 503 with its detail otherwise. Both processes (``run`` and ``serve``) serve these
    same routes; only the worker gives a ``liveness``."""

    async def healthz(_: Request) -> Response:
        if liveness is None:
            return JSONResponse({"status": "ok"})
        try:
            verdict = liveness()
        except Exception:
            # A check that breaks is no evidence of a stall: say so, restart nothing.
            log.exception("liveness_check_failed")
            return JSONResponse({"status": "ok", "liveness_check_failed": True})
        return JSONResponse(
            {"status": "ok" if verdict.alive else "stalled", **verdict.detail},
            status_code=200 if verdict.alive else 503,
        )

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


def health_app(checks: Mapping[str, Check], liveness: LivenessCheck | None = None) -> Starlette:
    """The worker's ``HTTP_PORT``: the health routes and Prometheus ``/metrics``."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[*health_routes(checks, liveness), Route("/metrics", metrics)])


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
