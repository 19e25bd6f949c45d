"""ZoomMeetings against the emulator over real sockets: one test per row of issue 4."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from datetime import time as day_time
from typing import Any

import httpx
import pytest
import structlog
from devservices.zoom_emulator import EmulatedUser, Fault, ZoomEmulator

from tests.emulator import openapi
from tests.zoom.conftest import EmulatorTokens
from token_store.models import ZoomGrant
from worker.zoom import (
    InvalidMeetingSpec,
    MeetingNotFound,
    MeetingPatch,
    MeetingSpec,
    NotMeetingHost,
    ZoomAccountInactive,
    ZoomAuthorizationRejected,
    ZoomDailyLimitReached,
    ZoomMeetings,
    ZoomRateLimited,
    ZoomRejectedRequest,
    ZoomUnavailable,
)
from worker.zoom.metrics import ZOOM_RETRIES
from worker.zoom.models import zoom_time

USER = "talivo-ana"
CREATE = "POST /v2/users/{userId}/meetings"
GET = "GET /v2/meetings/{meetingId}"
PATCH = "PATCH /v2/meetings/{meetingId}"
START = datetime(2030, 1, 31, 9, 30, tzinfo=UTC)
SPEC = MeetingSpec(
    topic="Interview: Ana",
    agenda="Second round",
    start_time=START,
    duration_minutes=45,
    timezone="Europe/Berlin",
)


def _retries(endpoint: str, cause: str) -> float:
    value: float = ZOOM_RETRIES.labels(endpoint, cause)._value.get()
    return value


async def test_create_get_update_list_delete(
    zoom: ZoomEmulator, ana: EmulatedUser, tokens: EmulatorTokens
) -> None:
    bodies: list[tuple[str, Any]] = []

    async def capture(request: httpx.Request) -> None:
        bodies.append((request.method, json.loads(request.content) if request.content else None))

    async with httpx.AsyncClient(event_hooks={"request": [capture]}) as http:
        client = ZoomMeetings(http, api_base_url=zoom.api_base_url, tokens=tokens)
        meeting = await client.create_meeting(USER, SPEC)
        assert meeting.start_time == START and meeting.host_id == ana.id
        assert meeting.duration == 45 and meeting.password
        assert not hasattr(meeting, "start_url")
        patch = MeetingPatch(topic="Moved", start_time=START + timedelta(days=1))
        await client.update_meeting(USER, meeting.id, patch)
        got = await client.get_meeting(USER, meeting.id)
        assert (got.topic, got.start_time, got.duration) == ("Moved", START + timedelta(days=1), 45)
        listed = await client.list_scheduled_meetings(USER)
        assert [m.id for m in listed] == [meeting.id]
        await client.delete_meeting(USER, meeting.id)
    assert zoom.meetings(ana.id) == []
    create_body, patch_body = bodies[0][1], bodies[1][1]
    openapi.validate(openapi.CREATE_REQUEST, create_body)
    openapi.validate(openapi.UPDATE_REQUEST, patch_body)
    assert create_body["type"] == 2 and create_body["start_time"] == "2030-01-31T09:30:00Z"
    assert set(patch_body) == {"topic", "start_time"}  # only the fields that were set


async def test_list_follows_pages(
    zoom: ZoomEmulator, tokens: EmulatorTokens, http: httpx.AsyncClient
) -> None:
    client = ZoomMeetings(http, api_base_url=zoom.api_base_url, tokens=tokens, list_page_size=2)
    made = [(await client.create_meeting(USER, SPEC)).id for _ in range(5)]
    assert [m.id for m in await client.list_scheduled_meetings(USER)] == made
    assert zoom.calls("GET /v2/users/{userId}/meetings") == 3


async def test_5xx_is_retried_then_succeeds(
    zoom: ZoomEmulator, ana: EmulatedUser, client: ZoomMeetings
) -> None:
    before = _retries("create_meeting", "unavailable")
    zoom.faults = [Fault(kind="error", status=503, count=2, endpoint=CREATE)]
    await client.create_meeting(USER, SPEC)
    assert zoom.calls(CREATE) == 3
    assert len(zoom.meetings(ana.id)) == 1
    assert _retries("create_meeting", "unavailable") - before == 2


async def test_dropped_connection_before_is_retried(
    zoom: ZoomEmulator, client: ZoomMeetings
) -> None:
    meeting = await client.create_meeting(USER, SPEC)
    zoom.faults = [Fault(kind="drop", count=1, endpoint=GET)]
    assert (await client.get_meeting(USER, meeting.id)).id == meeting.id
    assert zoom.calls(GET) == 2


async def test_lost_create_answer_is_not_resent(
    zoom: ZoomEmulator, ana: EmulatedUser, client: ZoomMeetings
) -> None:
    zoom.faults = [Fault(kind="drop", when="after", count=1, endpoint=CREATE)]
    with pytest.raises(ZoomUnavailable) as caught:
        await client.create_meeting(USER, SPEC)
    assert caught.value.outcome_unknown and caught.value.retryable
    assert zoom.calls(CREATE) == 1
    # The worker finds what the lost attempt made through the list.
    listed = await client.list_scheduled_meetings(USER)
    assert [m.id for m in listed] == [m.id for m in zoom.meetings(ana.id)]


async def test_budget_exhausted(zoom: ZoomEmulator, client: ZoomMeetings) -> None:
    zoom.faults = [Fault(kind="error", status=500, endpoint=GET)]
    started = time.monotonic()
    with pytest.raises(ZoomUnavailable) as caught:
        await client.get_meeting(USER, 1)
    elapsed = time.monotonic() - started
    assert caught.value.retryable
    assert caught.value.attempts == zoom.calls(GET) >= 3
    assert elapsed <= 1.5 + 0.5


async def test_non_json_5xx_is_retried(zoom: ZoomEmulator, client: ZoomMeetings) -> None:
    meeting = await client.create_meeting(USER, SPEC)
    zoom.faults = [Fault(kind="non_json", status=502, count=1, endpoint=GET)]
    assert (await client.get_meeting(USER, meeting.id)).id == meeting.id
    assert zoom.calls(GET) == 2


async def test_non_json_4xx_is_rejected_without_retry(
    zoom: ZoomEmulator, client: ZoomMeetings
) -> None:
    zoom.faults = [Fault(kind="non_json", status=400, endpoint=GET)]
    with pytest.raises(ZoomRejectedRequest):
        await client.get_meeting(USER, 1)
    assert zoom.calls(GET) == 1


@pytest.mark.parametrize("form", ["seconds", "http_date", "iso"])
async def test_retry_after_is_honoured(
    zoom: ZoomEmulator, tokens: EmulatorTokens, http: httpx.AsyncClient, form: str
) -> None:
    client = ZoomMeetings(
        http,
        api_base_url=zoom.api_base_url,
        tokens=tokens,
        retry_budget_seconds=4,
        backoff_base_seconds=0.01,
    )
    before = _retries("create_meeting", "rate_limited")
    zoom.faults = [
        Fault(kind="rate_limit", count=1, endpoint=CREATE, retry_after=form, retry_after_seconds=1)
    ]
    started = time.monotonic()
    await client.create_meeting(USER, SPEC)
    # Backoff alone would have come back after ~10 ms; Zoom asked for a second.
    assert time.monotonic() - started >= 0.95
    assert zoom.calls(CREATE) == 2
    assert _retries("create_meeting", "rate_limited") - before == 1


async def test_retry_after_beyond_the_budget_gives_up_at_once(
    zoom: ZoomEmulator, client: ZoomMeetings
) -> None:
    zoom.faults = [Fault(kind="rate_limit", endpoint=CREATE, retry_after_seconds=30)]
    started = time.monotonic()
    with pytest.raises(ZoomRateLimited) as caught:
        await client.create_meeting(USER, SPEC)
    assert time.monotonic() - started < 0.5
    assert caught.value.retry_after == 30 and caught.value.attempts == 1


async def test_daily_limit_is_not_retried(
    zoom: ZoomEmulator, ana: EmulatedUser, client: ZoomMeetings
) -> None:
    zoom.set_daily_used(ana.id, 100)
    with pytest.raises(ZoomDailyLimitReached) as caught:
        await client.create_meeting(USER, SPEC)
    # Retryable by the worker's schedule after Zoom's reset (00:00 UTC), never in place.
    assert caught.value.retryable and caught.value.attempts == 1
    assert caught.value.reason == "zoom_daily_limit_reached"
    now = datetime.now(UTC)
    assert caught.value.resets_at == datetime.combine(
        now.date() + timedelta(days=1), day_time(0), tzinfo=UTC
    )
    assert zoom.calls(CREATE) == 1
    # Until the reset the host's creates and updates are held back here, not sent.
    with pytest.raises(ZoomDailyLimitReached) as held:
        await client.update_meeting(USER, 1, MeetingPatch(topic="x"))
    assert held.value.attempts == 0 and zoom.calls(CREATE) == 1


async def test_expired_token_is_refreshed_once_and_retried(
    zoom: ZoomEmulator, ana: EmulatedUser, tokens: EmulatorTokens, client: ZoomMeetings
) -> None:
    meeting = await client.create_meeting(USER, SPEC)
    zoom.expire_access_tokens(ana.id)
    assert (await client.get_meeting(USER, meeting.id)).id == meeting.id
    assert tokens.refreshes == 1
    assert zoom.calls(GET) == 2
    assert zoom.calls("POST /oauth/token") == 1


class _StaleTokens(EmulatorTokens):
    """A refresh that hands back a token Zoom still refuses."""

    async def refresh_after_rejection(self, user_id: str, rejected: ZoomGrant) -> ZoomGrant:
        self.refreshes += 1
        return rejected


async def test_rejected_again_after_refresh_is_authorization_expired(
    zoom: ZoomEmulator, ana: EmulatedUser, http: httpx.AsyncClient
) -> None:
    tokens = _StaleTokens(zoom)
    tokens.connect(USER, ana)
    client = ZoomMeetings(http, api_base_url=zoom.api_base_url, tokens=tokens)
    zoom.expire_access_tokens(ana.id)
    with pytest.raises(ZoomAuthorizationRejected) as caught:
        await client.get_meeting(USER, 1)
    assert caught.value.reason == "zoom_authorization_expired"
    assert caught.value.attempts == 2 and tokens.refreshes == 1
    assert zoom.calls(GET) == 2


class TokenStoreDown(Exception):
    pass


class _BrokenTokens(EmulatorTokens):
    async def get_access_token(self, user_id: str) -> ZoomGrant:
        raise TokenStoreDown("store unavailable")


async def test_token_port_errors_pass_through(zoom: ZoomEmulator, http: httpx.AsyncClient) -> None:
    client = ZoomMeetings(http, api_base_url=zoom.api_base_url, tokens=_BrokenTokens(zoom))
    with pytest.raises(TokenStoreDown):
        await client.get_meeting(USER, 1)


async def test_not_meeting_host(
    zoom: ZoomEmulator, tokens: EmulatorTokens, client: ZoomMeetings
) -> None:
    meeting = await client.create_meeting(USER, SPEC)
    tokens.connect("talivo-bo", zoom.add_user("bo@example.com"))
    calls: list[Any] = [
        client.get_meeting("talivo-bo", meeting.id),
        client.update_meeting("talivo-bo", meeting.id, MeetingPatch(topic="mine")),
        client.delete_meeting("talivo-bo", meeting.id),
    ]
    for call in calls:
        with pytest.raises(NotMeetingHost) as caught:
            await call
        assert caught.value.reason == "not_meeting_host" and caught.value.attempts == 1


async def test_meeting_not_found(zoom: ZoomEmulator, client: ZoomMeetings) -> None:
    meeting = await client.create_meeting(USER, SPEC)
    await client.delete_meeting(USER, meeting.id)
    for call in (
        client.get_meeting(USER, meeting.id),
        client.update_meeting(USER, meeting.id, MeetingPatch(topic="x")),
        client.delete_meeting(USER, meeting.id),
    ):
        with pytest.raises(MeetingNotFound) as caught:
            await call
        assert caught.value.reason is None and not caught.value.retryable


async def test_inactive_account(
    zoom: ZoomEmulator, ana: EmulatedUser, client: ZoomMeetings
) -> None:
    zoom.set_user_status(ana.id, "inactive")
    with pytest.raises(ZoomAccountInactive) as caught:
        await client.create_meeting(USER, SPEC)
    assert caught.value.reason == "zoom_account_inactive"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: MeetingSpec("x" * 201, "", START, 30, "UTC"), id="topic-201"),
        pytest.param(lambda: MeetingSpec("t", "x" * 2001, START, 30, "UTC"), id="agenda-2001"),
        pytest.param(
            lambda: MeetingSpec("t", "", datetime(2030, 1, 1), 30, "UTC"), id="naive-start"
        ),
        pytest.param(lambda: MeetingPatch(topic="x" * 201), id="patch-topic-201"),
    ],
)
def test_zoom_limits_are_enforced_before_sending(make: Any) -> None:
    with pytest.raises(InvalidMeetingSpec) as caught:
        make()
    assert isinstance(caught.value, ZoomRejectedRequest)
    assert caught.value.reason == "zoom_rejected_request"


async def test_retries_are_logged_without_the_token(
    zoom: ZoomEmulator, ana: EmulatedUser, client: ZoomMeetings
) -> None:
    meeting = await client.create_meeting(USER, SPEC)
    zoom.expire_access_tokens(ana.id)
    zoom.faults = [
        Fault(kind="error", status=503, count=1, endpoint=GET),
        Fault(kind="drop", count=1, endpoint=GET),
    ]
    with structlog.testing.capture_logs() as logs:
        await client.get_meeting(USER, meeting.id)
    events = [e["event"] for e in logs]
    assert events.count("zoom_retry") == 2 and events.count("zoom_token_rejected") == 1
    text = repr(logs)
    assert not [s for s in zoom.issued_secrets() if s in text]


def test_zoom_time_is_utc_to_the_second_with_a_four_digit_year() -> None:
    berlin = timezone(timedelta(hours=1))
    assert zoom_time(datetime(2030, 1, 31, 10, 30, 5, 999999, tzinfo=berlin)) == (
        "2030-01-31T09:30:05Z"
    )
    # strftime("%Y") writes year 1 as "1", a start time Zoom cannot read.
    assert zoom_time(datetime(1, 6, 1, 10, 0, tzinfo=UTC)) == "0001-06-01T10:00:00Z"
    assert zoom_time(datetime(999, 6, 1, 10, 0, tzinfo=UTC)) == "0999-06-01T10:00:00Z"
