"""``/v2``: the user and meeting endpoints, with Zoom's auth, ownership and rate-limit rules.

Order of checks per request, as Zoom applies them: the bearer token (124), the account's
per-second limit for the endpoint's category (429, ``X-RateLimit-*`` headers), the user's
status (1001), the host's daily create/update limit (429 without ``Retry-After`` or
``X-RateLimit-Type``), then the operation itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devservices.zoom_emulator import meetings, notifications
from devservices.zoom_emulator.limits import Category
from devservices.zoom_emulator.models import ApiCall, MeetingRecord, UserRecord
from devservices.zoom_emulator.state import Refusal, World, zoom_error

QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
DAILY_MESSAGE = (
    "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests "
    "permitted for this particular user. You may resume these requests at GMT 00:00:00."
)


def qps_refusal(category: Category, limit: int, retry_after: str | None) -> Refusal:
    headers = {
        "X-RateLimit-Category": category,
        "X-RateLimit-Type": "QPS",
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
    }
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Refusal(429, {"code": 4001, "message": QPS_MESSAGE}, headers)


def daily_refusal(world: World) -> Refusal:
    headers: dict[str, str] = {}
    if world.daily_limit_headers:
        now = world.now()
        midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)
        headers = {
            "Retry-After": str(math.ceil((midnight - now).total_seconds())),
            "X-RateLimit-Type": "Daily-limit",
        }
    return Refusal(429, {"code": 429, "message": DAILY_MESSAGE}, headers)


Handler = Callable[[Request, UserRecord], Awaitable[Response]]


def routes(world: World) -> list[Route]:
    def guarded(category: Category, daily: bool, handler: Handler) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            user: UserRecord | None = None
            try:
                user = world.authenticate(request.headers.get("authorization"))
                plan = world.accounts[user.account_id]
                verdict = world.limits.take_qps(user.account_id, plan, category)
                if not verdict.allowed:
                    raise qps_refusal(category, verdict.limit, "1")
                if user.status == "inactive" or (
                    user.status == "pending" and request.url.path != "/v2/users/me"
                ):
                    raise zoom_error(404, 1001, f"User does not exist: {_user_ref(request)}.")
                if daily and not world.limits.take_daily(user.id, world.now().date()):
                    raise daily_refusal(world)
                response = await handler(request, user)
            except Refusal as refusal:
                response = JSONResponse(refusal.body, refusal.status, headers=refusal.headers)
            journal(request, user, response)
            return response

        return endpoint

    def journal(request: Request, user: UserRecord | None, response: Response) -> None:
        """Record who asked about which meeting (``ZoomEmulator.api_calls``)."""
        route = request.scope.get("route")
        raw = str(request.path_params.get("meetingId", ""))
        meeting_id = int(raw) if raw.isdigit() else None
        if meeting_id is None and request.method == "POST" and response.status_code == 201:
            meeting_id = json.loads(bytes(response.body))["id"]  # a create: the meeting it made
        with world.lock:
            record = world.meetings.get(meeting_id) if meeting_id is not None else None
            world.journal.append(
                ApiCall(
                    endpoint=f"{request.method} {getattr(route, 'path', request.url.path)}",
                    user_id=user.id if user else None,
                    meeting_id=meeting_id,
                    meeting_host_id=record.host_id if record else None,
                    status=response.status_code,
                )
            )

    def own_meeting(request: Request, user: UserRecord, not_host_code: int) -> MeetingRecord:
        raw = request.path_params["meetingId"]
        record = world.meetings.get(int(raw)) if raw.isdigit() else None
        if record is None or record.deleted:
            raise zoom_error(404, 3001, f"Meeting does not exist: {raw}.")
        if record.host_id != user.id:
            if not_host_code == 3000:
                raise zoom_error(400, 3000, "Cannot access meeting information.")
            raise zoom_error(400, 3003, "You are not the meeting host.")
        return record

    async def get_me(request: Request, user: UserRecord) -> Response:
        plan = world.accounts[user.account_id]
        return JSONResponse(
            {
                "id": user.id,
                "account_id": user.account_id,
                "email": user.email,
                "status": user.status,
                "type": 2 if plan != "free" else 1,
                "first_name": user.email.partition("@")[0],
                "last_name": "",
                "timezone": "UTC",
            }
        )

    async def create_meeting(request: Request, user: UserRecord) -> Response:
        _check_user_ref(request, user)
        body = await _json(request)
        record = meetings.create(world, user, body, str(request.base_url).rstrip("/"))
        return JSONResponse(meetings.as_json(record, full=True), 201)

    async def list_meetings(request: Request, user: UserRecord) -> Response:
        _check_user_ref(request, user)
        q = request.query_params
        kind = q.get("type", "scheduled")
        if kind not in ("scheduled", "live", "upcoming", "upcoming_meetings", "previous_meetings"):
            raise zoom_error(400, 300, "Invalid field: type.")
        page_size = _int(q.get("page_size"), 30, "page_size")
        page_size = min(max(page_size, 1), 300)
        offset = _page_offset(q.get("next_page_token"))
        now = world.now()
        with world.lock:
            mine = [
                m
                for m in world.meetings.values()
                if m.host_id == user.id and not m.deleted and m.type in (2, 8)
            ]
        if kind.startswith("upcoming"):
            mine = [m for m in mine if meetings.is_upcoming(m, now)]
        elif kind == "live":
            mine = []
        mine.sort(key=lambda m: m.id)
        page = mine[offset : offset + page_size]
        more = offset + page_size < len(mine)
        return JSONResponse(
            {
                "page_size": page_size,
                "total_records": len(mine),
                "next_page_token": _page_token(offset + page_size) if more else "",
                "meetings": [meetings.as_summary(m) for m in page],
            }
        )

    async def get_meeting(request: Request, user: UserRecord) -> Response:
        with world.lock:
            record = own_meeting(request, user, 3000)
            return JSONResponse(meetings.as_json(record, full=False))

    async def patch_meeting(request: Request, user: UserRecord) -> Response:
        body = await _json(request)
        with world.lock:
            record = own_meeting(request, user, 3003)
            before = notifications.snapshot(record)
            meetings.update(record, body)
            notifications.updated(world, record, before, user)  # comes back as a webhook
        return Response(status_code=204)

    async def delete_meeting(request: Request, user: UserRecord) -> Response:
        with world.lock:
            record = own_meeting(request, user, 3003)
            record.deleted = True
            notifications.deleted(world, record, user)
        return Response(status_code=204)

    return [
        Route("/v2/users/me", guarded("Light", False, get_me), methods=["GET"]),
        Route(
            "/v2/users/{userId}/meetings",
            guarded("Medium", True, create_meeting),
            methods=["POST"],
        ),
        Route(
            "/v2/users/{userId}/meetings",
            guarded("Light", False, list_meetings),
            methods=["GET"],
        ),
        Route("/v2/meetings/{meetingId}", guarded("Light", False, get_meeting), methods=["GET"]),
        Route(
            "/v2/meetings/{meetingId}",
            guarded("Light", True, patch_meeting),
            methods=["PATCH"],
        ),
        Route(
            "/v2/meetings/{meetingId}",
            guarded("Light", False, delete_meeting),
            methods=["DELETE"],
        ),
    ]


def _user_ref(request: Request) -> str:
    return str(request.path_params.get("userId", "me"))


def _check_user_ref(request: Request, user: UserRecord) -> None:
    ref = _user_ref(request)
    if ref not in ("me", user.id, user.email):
        raise zoom_error(404, 1001, f"User does not exist: {ref}.")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise zoom_error(400, 300, "Request Body should be a valid JSON object.") from None
    if not isinstance(body, dict):
        raise zoom_error(400, 300, "Request Body should be a valid JSON object.")
    return body


def _int(value: str | None, default: int, field: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise zoom_error(400, 300, f"Invalid field: {field}.") from None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(raw.removeprefix("offset:"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise zoom_error(400, 300, "Invalid next_page_token.") from None
