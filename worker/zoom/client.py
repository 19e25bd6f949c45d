"""``ZoomMeetings``: Zoom's Meetings API for a Talivo user, with rate limiting and retries.

Per call: ask the circuit breaker (``breaker.py``: nothing is sent, not even a token refresh,
while Zoom is failing most calls), get the user's grant from the token port, for a create or
update check the host is not at its daily limit (``daily.py``), wait for the Zoom account's
bucket, send. Connect errors, timeouts, 5xx and per-second 429s are retried with exponential
backoff and full jitter (or after ``Retry-After``) within a total time budget; other 4xx never
are, nor is a refusal by the breaker or the daily limit (the worker's retry schedule waits those
out). A 401/124 leads to one token refresh and one retry. A create whose answer was lost (timeout
after sending, dropped connection) is not re-sent here: that could make a second meeting, so
it fails with ``ZoomUnavailable(outcome_unknown=True)`` and the worker looks the meeting up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx
from structlog.stdlib import get_logger
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from token_store.models import ZoomGrant
from worker.first_try import after_first_try
from worker.zoom.answers import body_of, error_for
from worker.zoom.backoff import Backoff
from worker.zoom.breaker import CircuitBreaker
from worker.zoom.daily import DailyLimiter, DailyLimits
from worker.zoom.errors import (
    ZoomAuthorizationRejected,
    ZoomCircuitOpen,
    ZoomDailyLimitReached,
    ZoomError,
    ZoomRateLimited,
    ZoomUnavailable,
)
from worker.zoom.metrics import (
    RATE_LIMIT_WAIT_SECONDS,
    ZOOM_REQUEST_SECONDS,
    ZOOM_REQUESTS,
    ZOOM_RETRIES,
)
from worker.zoom.models import Meeting, MeetingPatch, MeetingSpec, MeetingSummary
from worker.zoom.ratelimit import AccountRateLimiter, Category, RateLimiter
from worker.zoom.tokens import AccessTokens

log = get_logger(__name__)

Endpoint = Literal[
    "create_meeting", "get_meeting", "update_meeting", "delete_meeting", "list_meetings"
]
RetryCause = Literal["unavailable", "rate_limited", "token_refresh"]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0, pool=5.0)
_HEADERS = {"Accept": "application/json", "User-Agent": "talivo-zoom-worker"}
LIST_PAGE_SIZE = 300
_FIXED_PATHS = ("/users/me/meetings",)  # creates and lists; the others name a meeting


@dataclass(frozen=True)
class _Operation:
    endpoint: Endpoint
    method: str
    category: Category
    idempotent: bool
    daily: bool = False  # counts toward the host's daily limit


CREATE = _Operation("create_meeting", "POST", "Medium", idempotent=False, daily=True)
GET = _Operation("get_meeting", "GET", "Light", idempotent=True)
UPDATE = _Operation("update_meeting", "PATCH", "Light", idempotent=True, daily=True)
DELETE = _Operation("delete_meeting", "DELETE", "Light", idempotent=True)
LIST = _Operation("list_meetings", "GET", "Light", idempotent=True)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Sender(Protocol):
    """Sends one request as it is built and returns the answer, read whole.

    May block on a free connection (``httpx.PoolTimeout`` past the request's pool timeout) and
    on Zoom; raises httpx's transport errors, never for an HTTP status. ``httpx.AsyncClient``
    is one (with its own layers: hooks, auth, redirects); the worker's ``AiohttpTransport`` is
    another, without them (a third of a call's CPU, ``worker/runtime/http.py``).
    """

    async def send(self, request: httpx.Request) -> httpx.Response: ...


class ZoomMeetings:
    """Implements ``worker.pipeline.ports.Meetings`` over one shared ``Sender``."""

    def __init__(
        self,
        http: Sender,
        *,
        api_base_url: str,
        tokens: AccessTokens,
        retry_budget_seconds: float = 30.0,
        backoff_base_seconds: float = 0.2,
        backoff_cap_seconds: float = 10.0,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        daily_limits: DailyLimiter | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        now: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        list_page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        self._http = http
        self._base = api_base_url.rstrip("/")
        self._tokens = tokens
        self._budget = retry_budget_seconds
        self._backoff = Backoff(backoff_base_seconds, backoff_cap_seconds)
        self._limiter: RateLimiter = limiter or AccountRateLimiter()
        self.breaker = breaker or CircuitBreaker("zoom_api")
        self._daily: DailyLimiter = daily_limits or DailyLimits()
        self._extensions = {"timeout": timeout.as_dict()}
        # Parsed once: httpx parses a URL given as text at every request (30 µs of a create).
        self._urls = {path: httpx.URL(self._base + path) for path in _FIXED_PATHS}
        self._now = now
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._page_size = list_page_size

    # -- operations --------------------------------------------------------------------------

    async def create_meeting(self, user_id: str, spec: MeetingSpec) -> Meeting:
        body = await self._call(CREATE, user_id, "/users/me/meetings", json=spec.body())
        return Meeting.from_zoom(self._object(CREATE, body))

    async def get_meeting(self, user_id: str, meeting_id: int) -> Meeting:
        body = await self._call(GET, user_id, f"/meetings/{int(meeting_id)}")
        return Meeting.from_zoom(self._object(GET, body))

    async def update_meeting(self, user_id: str, meeting_id: int, patch: MeetingPatch) -> None:
        await self._call(UPDATE, user_id, f"/meetings/{int(meeting_id)}", json=patch.body())

    async def delete_meeting(self, user_id: str, meeting_id: int) -> None:
        await self._call(DELETE, user_id, f"/meetings/{int(meeting_id)}")

    async def list_scheduled_meetings(self, user_id: str) -> list[MeetingSummary]:
        """Every scheduled meeting the user hosts, all pages."""
        found: list[MeetingSummary] = []
        params = {"type": "scheduled", "page_size": str(self._page_size)}
        while True:
            page = self._object(
                LIST, await self._call(LIST, user_id, "/users/me/meetings", params=params)
            )
            found.extend(MeetingSummary.from_zoom(m) for m in page.get("meetings") or [])
            token = page.get("next_page_token")
            if not token:
                return found
            params = params | {"next_page_token": str(token)}

    # -- one call, with retries --------------------------------------------------------------

    async def _call(
        self,
        op: _Operation,
        user_id: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        self.breaker.check()
        grant = await self._tokens.get_access_token(user_id)
        attempts = 0
        started = time.monotonic()

        async def attempt_once() -> httpx.Response:
            nonlocal attempts
            if op.daily:
                self._daily.check(user_id, self._now())
            probe = self.breaker.admit()  # before counting: a refused call is not an attempt
            attempts += 1
            try:
                waited = await self._limiter.acquire(grant.zoom_account_id, op.category)
            except BaseException:
                self.breaker.record(probe, None)
                raise
            RATE_LIMIT_WAIT_SECONDS.labels(op.category).observe(waited)
            try:
                return await self._send(op, grant, path, json, params, probe)
            except ZoomRateLimited as limited:
                # Zoom's window is fuller than ours said (another app, clock skew): everyone
                # calling this account waits as long as Zoom asked.
                pause = limited.retry_after if limited.retry_after is not None else 1.0
                await self._limiter.penalize(grant.zoom_account_id, op.category, pause)
                raise

        async def attempt() -> httpx.Response:
            nonlocal grant
            try:
                return await attempt_once()
            except ZoomAuthorizationRejected:
                ZOOM_RETRIES.labels(op.endpoint, "token_refresh").inc()
                log.info("zoom_token_rejected", endpoint=op.endpoint, user_id=user_id)
                grant = await self._tokens.refresh_after_rejection(user_id, grant)
                return await attempt_once()

        try:
            return await after_first_try(
                attempt,
                lambda: AsyncRetrying(
                    retry=retry_if_exception(lambda exc: self._should_retry(op, exc)),
                    wait=self._wait,
                    stop=lambda state: self._out_of_budget(started, state),
                    before_sleep=lambda state: self._log_retry(op, state),
                    reraise=True,
                    sleep=self._sleep,
                ),
            )
        except ZoomError as exc:
            exc.attempts = attempts
            if isinstance(exc, ZoomDailyLimitReached) and exc.status is not None:
                self._daily.reached(user_id, exc.resets_at)
            if exc.retryable and self._should_retry(op, exc):
                exc.add_note(
                    f"gave up after {attempts} attempts in "
                    f"{time.monotonic() - started:.2f}s (budget {self._budget}s)"
                )
            raise

    def _should_retry(self, op: _Operation, exc: BaseException) -> bool:
        if isinstance(exc, ZoomRateLimited):
            return True
        if not isinstance(exc, ZoomUnavailable) or isinstance(exc, ZoomCircuitOpen):
            return False
        return op.idempotent or not exc.outcome_unknown

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ZoomRateLimited) and exc.retry_after is not None:
            # A little jitter so callers told the same second do not all come back at once.
            return exc.retry_after + self._rng.uniform(0.0, min(0.25, exc.retry_after * 0.1))
        return self._backoff.delay(state.attempt_number, self._rng)

    def _out_of_budget(self, started: float, state: RetryCallState) -> bool:
        # From the call's start, not the retrying's: that began after the first try.
        return time.monotonic() - started + state.upcoming_sleep > self._budget

    def _log_retry(self, op: _Operation, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause: RetryCause = "rate_limited" if isinstance(exc, ZoomRateLimited) else "unavailable"
        ZOOM_RETRIES.labels(op.endpoint, cause).inc()
        log.warning(
            "zoom_retry",
            endpoint=op.endpoint,
            cause=cause,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 3),
            status=getattr(exc, "status", None),
            error=str(exc),
        )

    # -- the one place httpx is spoken -------------------------------------------------------

    async def _send(
        self,
        op: _Operation,
        grant: ZoomGrant,
        path: str,
        json: dict[str, Any] | None,
        params: dict[str, str] | None,
        probe: bool,
    ) -> httpx.Response:
        """Send once; tells the breaker how it went (``probe``: this call is its probe)."""
        failed: bool | None = None  # for the breaker: None says nothing about Zoom
        status = "error"
        started = time.monotonic()
        try:
            request = httpx.Request(
                op.method,
                self._urls.get(path) or self._base + path,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {grant.access_token}", **_HEADERS},
                extensions=self._extensions,
            )
            response = await self._http.send(request)  # redirects are not followed
            status = str(response.status_code)
            failed = response.status_code >= 500
        except httpx.PoolTimeout as exc:  # our own pool is exhausted: nothing about Zoom
            raise ZoomUnavailable(f"{op.endpoint}: cannot connect ({type(exc).__name__})") from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failed = True
            raise ZoomUnavailable(f"{op.endpoint}: cannot connect ({type(exc).__name__})") from exc
        except httpx.TimeoutException as exc:
            failed = True
            raise ZoomUnavailable(
                f"{op.endpoint}: no answer in time ({type(exc).__name__})", outcome_unknown=True
            ) from exc
        except httpx.TransportError as exc:
            failed = True
            raise ZoomUnavailable(
                f"{op.endpoint}: connection lost ({type(exc).__name__})", outcome_unknown=True
            ) from exc
        finally:
            self.breaker.record(probe, failed)
            ZOOM_REQUEST_SECONDS.labels(op.endpoint).observe(time.monotonic() - started)
            ZOOM_REQUESTS.labels(op.endpoint, status).inc()  # "error": no answer came
        if response.is_success:
            return response
        raise error_for(op.endpoint, response, self._now())

    def _object(self, op: _Operation, response: httpx.Response) -> dict[str, Any]:
        body = body_of(response)
        if body is None:
            raise ZoomUnavailable(
                f"{op.endpoint}: Zoom answered {response.status_code} without a JSON object",
                status=response.status_code,
                outcome_unknown=not op.idempotent,
            )
        return body
