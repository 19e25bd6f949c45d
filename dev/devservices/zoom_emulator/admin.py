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

A host working in Zoom's own apps, and the app's event subscription
(:mod:`devservices.zoom_emulator.notifications`):

- ``PATCH /_emulator/meetings/{id}`` (the fields of ``PATCH /v2/meetings/{id}``),
  ``DELETE /_emulator/meetings/{id}``, ``POST /_emulator/meetings/{id}/start``,
  ``POST /_emulator/meetings/{id}/end`` -> ``{"notified": bool}`` (404 for no such meeting)
- ``PUT /_emulator/webhooks`` ``{url, secret_token, events?, retry_delays?, timeout?}``:
  subscribe (``DELETE``: stop); ``GET /_emulator/webhooks`` -> ``{"idle", "deliveries"}``
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devservices.zoom_emulator import notifications
from devservices.zoom_emulator.faults import Fault, FaultPlan
from devservices.zoom_emulator.meetings import as_json
from devservices.zoom_emulator.state import DEFAULT_SCOPES, Refusal, World
from devservices.zoom_emulator.webhooks import MEETING_EVENTS, ZOOM_RETRY_DELAYS, Subscription

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

    async def host_operation(request: Request) -> Response:
        raw = str(request.path_params["meeting_id"])
        if not raw.isdigit():
            return JSONResponse({"error": "no such meeting"}, 404)
        meeting_id, action = int(raw), request.path_params.get("action")
        if request.method == "POST" and action not in ("start", "end"):
            return JSONResponse({"error": "no such operation"}, 404)
        try:
            if request.method == "PATCH":
                notified = notifications.host_edit(world, meeting_id, await request.json())
            elif request.method == "DELETE":
                notified = notifications.host_delete(world, meeting_id)
            elif action == "start":
                notified = notifications.host_start(world, meeting_id)
            else:
                notified = notifications.host_end(world, meeting_id)
        except Refusal as refusal:
            return JSONResponse(refusal.body, refusal.status)
        return JSONResponse({"notified": notified})

    async def webhooks(request: Request) -> Response:
        if request.method == "PUT":
            body = await request.json()
            world.webhooks.subscribe(
                Subscription(
                    url=body["url"],
                    secret_token=body["secret_token"],
                    events=tuple(body.get("events") or MEETING_EVENTS),
                    retry_delays=tuple(body.get("retry_delays") or ZOOM_RETRY_DELAYS),
                    timeout=float(body.get("timeout", 3.0)),
                )
            )
            return Response(status_code=204)
        if request.method == "DELETE":
            world.webhooks.subscribe(None)
            return Response(status_code=204)
        return JSONResponse(
            {
                "idle": world.webhooks.idle,
                "deliveries": [dataclasses.asdict(d) for d in world.webhooks.deliveries()],
            }
        )

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
        Route("/_emulator/meetings/{meeting_id}", host_operation, methods=["PATCH", "DELETE"]),
        Route(
            "/_emulator/meetings/{meeting_id}/{action:str}",
            host_operation,
            methods=["POST"],
        ),
        Route("/_emulator/webhooks", webhooks, methods=["GET", "PUT", "DELETE"]),
    ]
