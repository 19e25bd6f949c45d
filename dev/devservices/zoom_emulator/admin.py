"""``/_emulator/...``: the test-and-demo control API, JSON in and out.

The same operations as :class:`~devservices.zoom_emulator.server.ZoomEmulator`'s methods, for a
process that did not start the emulator (the worker under test, the demo):

- ``POST /_emulator/users`` ``{email, plan?, account_id?, status?}`` -> the user
- ``POST /_emulator/users/{id}/status`` ``{status}``
- ``GET /_emulator/users/{id}/meetings`` -> the user's meetings (deleted ones excluded)
- ``POST /_emulator/authorize`` ``{user_id, redirect_uri, code_challenge?, scopes?}`` -> ``{code}``
- ``POST /_emulator/grants`` ``{user_id}`` -> ``{access_token, refresh_token}``
- ``POST /_emulator/expire-access-tokens`` ``{user_id?}``
- ``GET /_emulator/calls`` -> ``{"METHOD /path/{template}": count}``
- ``GET /_emulator/api-calls`` -> every ``/v2`` request: endpoint, Zoom user, meeting, its host
- ``GET|POST|DELETE /_emulator/faults``: list (with how often each fired), add one or a list, clear
- ``PUT /_emulator/settings`` ``{access_token_ttl?, daily_limit?}``
- ``GET /_emulator/secrets`` -> every token and code issued; ``POST /_emulator/reset``
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devservices.zoom_emulator.faults import Fault, FaultPlan
from devservices.zoom_emulator.meetings import as_json
from devservices.zoom_emulator.state import DEFAULT_SCOPES, World

_FAULTS = TypeAdapter(Fault | list[Fault])


def routes(world: World, faults: FaultPlan) -> list[Route]:
    async def add_user(request: Request) -> Response:
        body = await request.json()
        user = world.add_user(
            body["email"],
            body.get("plan", "pro"),
            body.get("account_id"),
            body.get("status", "active"),
        )
        return JSONResponse(dataclasses.asdict(user), 201)

    async def set_status(request: Request) -> Response:
        body = await request.json()
        try:
            world.set_user_status(request.path_params["user_id"], body["status"])
        except KeyError:
            return JSONResponse({"error": "no such user"}, 404)
        return Response(status_code=204)

    async def user_meetings(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        with world.lock:
            mine = [
                as_json(m, full=False)
                for m in world.meetings.values()
                if m.host_id == user_id and not m.deleted
            ]
        return JSONResponse(mine)

    async def authorize(request: Request) -> Response:
        body = await request.json()
        try:
            code = world.authorize(
                body["user_id"],
                body["redirect_uri"],
                body.get("code_challenge"),
                body.get("scopes") or DEFAULT_SCOPES,
            )
        except KeyError:
            return JSONResponse({"error": "no such user"}, 404)
        return JSONResponse({"code": code})

    async def grants(request: Request) -> Response:
        body = await request.json()
        try:
            access, refresh = world.grant_tokens(body["user_id"])
        except KeyError:
            return JSONResponse({"error": "no such user"}, 404)
        return JSONResponse({"access_token": access, "refresh_token": refresh})

    async def expire(request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        world.expire_access_tokens(body.get("user_id"))
        return Response(status_code=204)

    async def calls(_: Request) -> Response:
        with world.lock:
            return JSONResponse(dict(world.calls))

    async def api_calls(_: Request) -> Response:
        with world.lock:
            return JSONResponse([dataclasses.asdict(c) for c in world.journal])

    async def fault_rules(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear()
        elif request.method == "POST":
            try:
                parsed = _FAULTS.validate_json(await request.body())
            except ValidationError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            faults.add(*(parsed if isinstance(parsed, list) else [parsed]))
        listed: list[dict[str, Any]] = [
            rule.model_dump() | {"fired": fired}
            for rule, fired in zip(faults.rules, faults.fired(), strict=False)
        ]
        return JSONResponse(listed)

    async def settings(request: Request) -> Response:
        body = await request.json()
        with world.lock:
            if "access_token_ttl" in body:
                world.access_token_ttl = int(body["access_token_ttl"])
            if "daily_limit" in body:
                world.limits.daily_limit = int(body["daily_limit"])
        return Response(status_code=204)

    async def issued(_: Request) -> Response:
        return JSONResponse(world.issued_secrets())

    async def reset(_: Request) -> Response:
        world.reset()
        faults.clear()
        return Response(status_code=204)

    return [
        Route("/_emulator/users", add_user, methods=["POST"]),
        Route("/_emulator/users/{user_id}/status", set_status, methods=["POST"]),
        Route("/_emulator/users/{user_id}/meetings", user_meetings, methods=["GET"]),
        Route("/_emulator/authorize", authorize, methods=["POST"]),
        Route("/_emulator/grants", grants, methods=["POST"]),
        Route("/_emulator/expire-access-tokens", expire, methods=["POST"]),
        Route("/_emulator/calls", calls, methods=["GET"]),
        Route("/_emulator/api-calls", api_calls, methods=["GET"]),
        Route("/_emulator/faults", fault_rules, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/settings", settings, methods=["PUT"]),
        Route("/_emulator/secrets", issued, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]
