"""Zoom's answers read into outcomes: one function from an HTTP response to success or error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from worker.zoom.backoff import parse_retry_after
from worker.zoom.errors import (
    MeetingNotFound,
    NotMeetingHost,
    ZoomAccountInactive,
    ZoomAuthorizationRejected,
    ZoomDailyLimitReached,
    ZoomError,
    ZoomRateLimited,
    ZoomRejectedRequest,
    ZoomUnavailable,
)

INVALID_TOKEN = 124
MEETING_NOT_FOUND = 3001
USER_NOT_FOUND = 1001
HOSTING_NOT_ALLOWED = 3161
NO_PERMISSION = 200


def next_daily_reset(now: datetime) -> datetime:
    """The next 00:00 UTC after ``now``: when Zoom resets a host's daily limits."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def body_of(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object Zoom sent, or None (empty, HTML from an edge proxy, not an object)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def error_for(operation: str, response: httpx.Response, now: datetime) -> ZoomError:
    """The error a non-2xx answer stands for."""
    status = response.status_code
    body = body_of(response)
    code = body.get("code") if body else None
    code = code if isinstance(code, int) else None
    message = str(body.get("message", ""))[:300] if body else "(no JSON body)"
    text = f"{operation}: Zoom answered {status}, code {code}: {message}"
    kwargs: dict[str, Any] = {"status": status, "code": code}
    if status == 401 or code == INVALID_TOKEN:
        return ZoomAuthorizationRejected(text, **kwargs)
    if status == 429:
        daily = response.headers.get("X-RateLimit-Type", "").lower() == "daily-limit"
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if daily or "daily rate limit" in message.lower():
            # Zoom resets daily limits at 00:00 UTC; its answer may say when, or may not.
            resets_at = (
                now + timedelta(seconds=retry_after)
                if retry_after is not None
                else next_daily_reset(now)
            )
            return ZoomDailyLimitReached(text, resets_at=resets_at, **kwargs)
        return ZoomRateLimited(text, retry_after=retry_after, **kwargs)
    if status >= 500:
        return ZoomUnavailable(text, **kwargs)
    if code == MEETING_NOT_FOUND:
        return MeetingNotFound(text, **kwargs)
    if code in (USER_NOT_FOUND, HOSTING_NOT_ALLOWED):
        return ZoomAccountInactive(text, **kwargs)
    if code is not None and (code == NO_PERMISSION or 3000 <= code < 4000):
        return NotMeetingHost(text, **kwargs)
    if status == 404 and code is None:
        return MeetingNotFound(text, **kwargs)
    return ZoomRejectedRequest(text, **kwargs)
