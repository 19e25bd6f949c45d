"""The emulator's ASGI app: Zoom's routes behind a layer that counts calls and injects faults."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Message, Receive, Scope, Send

from devservices.zoom_emulator import admin, api, oauth
from devservices.zoom_emulator.faults import Fault, FaultPlan
from devservices.zoom_emulator.limits import QPS, Category
from devservices.zoom_emulator.state import World

NON_JSON_BODY = b"<html><head><title>{status}</title></head><body>upstream error</body></html>"


class EmulatorApp:
    def __init__(self, world: World, faults: FaultPlan) -> None:
        self.world = world
        self.faults = faults
        self._routes: list[BaseRoute] = [
            *oauth.routes(world),
            *api.routes(world),
            *admin.routes(world, faults),
        ]
        self._inner = Starlette(routes=self._routes)

    def endpoint(self, scope: Scope) -> str:
        """``"METHOD /path/{template}"`` of a request, the key for counts and fault rules."""
        partial: str | None = None
        for route in self._routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", "")
            if match is Match.FULL:
                return f"{scope['method']} {path}"
            if match is Match.PARTIAL and partial is None:
                partial = path
        return f"{scope['method']} {partial or scope['path']}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator/"):
            await self._inner(scope, receive, send)
            return
        endpoint = self.endpoint(scope)
        with self.world.lock:
            self.world.calls[endpoint] += 1
        delay, fault = self.faults.pick(endpoint)
        if delay:
            await asyncio.sleep(delay)
        if fault is None:
            await self._inner(scope, receive, send)
        elif fault.kind == "drop":
            if fault.when == "after":
                await self._inner(scope, receive, _discard)
            await _drop_connection(receive)
        else:
            await self._fault_response(fault, endpoint)(scope, receive, send)

    def _fault_response(self, fault: Fault, endpoint: str) -> Response:
        if fault.kind == "non_json":
            body = NON_JSON_BODY.replace(b"{status}", str(fault.status).encode())
            return Response(body, fault.status, media_type="text/html")
        if fault.kind == "error":
            return JSONResponse({"code": fault.status, "message": "Internal Error"}, fault.status)
        category: Category = "Medium" if endpoint == "POST /v2/users/{userId}/meetings" else "Light"
        retry_after = self._retry_after(fault)
        refusal = api.qps_refusal(category, QPS["pro"][category], retry_after)
        return JSONResponse(refusal.body, refusal.status, headers=refusal.headers)

    def _retry_after(self, fault: Fault) -> str | None:
        if fault.retry_after == "none":
            return None
        if fault.retry_after == "seconds":
            return str(math.ceil(fault.retry_after_seconds))
        # Dates have one-second resolution: round up so the client never comes back early.
        at = self.world.now() + timedelta(seconds=fault.retry_after_seconds)
        at = at.replace(microsecond=0) + timedelta(seconds=1 if at.microsecond else 0)
        if fault.retry_after == "http_date":
            return format_datetime(at, usegmt=True)
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _discard(_: Message) -> None:
    """The answer of a request whose connection is dropped afterwards goes nowhere."""


async def _drop_connection(receive: Receive) -> None:
    """Close the client's connection without an answer.

    ASGI has no "hang up" message, so reach the transport through uvicorn's request cycle
    (``receive`` is its bound method); without it, fail loudly rather than answer.
    """
    cycle: Any = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot drop the connection: not running under uvicorn")
    transport.abort()
    # Let uvicorn see the disconnect before the app returns, so it sends no 500 either.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
