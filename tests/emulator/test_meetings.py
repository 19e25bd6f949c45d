"""The emulator's Meetings API: shapes per Zoom's OpenAPI, ownership, errors, pagination."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator

from tests.emulator import openapi
from tests.emulator.conftest import bearer

SCHEDULED = {
    "topic": "Interview: Ana",
    "type": 2,
    "start_time": "2030-01-31T09:30:00Z",
    "duration": 45,
    "timezone": "Europe/Berlin",
    "agenda": "Second round",
}


@pytest.fixture
def api(zoom: ZoomEmulator, ana: EmulatedUser) -> httpx.Client:
    access, _ = zoom.grant_tokens(ana.id)
    return httpx.Client(base_url=zoom.api_base_url, headers=bearer(access), timeout=5)


def _create(api: httpx.Client, body: dict[str, Any] = SCHEDULED) -> dict[str, Any]:
    answer = api.post("/users/me/meetings", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_create_answers_per_the_openapi(api: httpx.Client, ana: EmulatedUser) -> None:
    openapi.validate(openapi.CREATE_REQUEST, SCHEDULED)
    created = _create(api)
    openapi.validate(openapi.CREATE_RESPONSE, created)
    assert isinstance(created["id"], int) and created["id"] > 2**31
    assert created["type"] == 2
    assert created["start_time"] == "2030-01-31T09:30:00Z"
    assert created["host_email"] == ana.email
    for key in ("join_url", "start_url", "password", "created_at"):
        assert created[key]


def test_times_are_written_with_four_digit_years(api: httpx.Client) -> None:
    created = _create(api, SCHEDULED | {"start_time": "0001-06-01T10:00:00Z"})
    assert created["start_time"] == "0001-06-01T10:00:00Z"  # strftime("%Y") would write "1-06-01"
    listed = api.get(f"/meetings/{created['id']}").json()
    assert listed["start_time"] == "0001-06-01T10:00:00Z"


def test_scheduled_without_start_time_silently_becomes_instant(api: httpx.Client) -> None:
    body = {k: v for k, v in SCHEDULED.items() if k != "start_time"}
    assert _create(api, body)["type"] == 1


def test_local_start_time_is_read_in_the_meeting_timezone(api: httpx.Client) -> None:
    created = _create(api, SCHEDULED | {"start_time": "2030-01-31T09:30:00"})
    assert created["start_time"] == "2030-01-31T08:30:00Z"  # Berlin is UTC+1 in January


def test_get_update_delete_lifecycle(api: httpx.Client) -> None:
    meeting_id = _create(api)["id"]
    got = api.get(f"/meetings/{meeting_id}")
    assert got.status_code == 200
    openapi.validate(openapi.GET_RESPONSE, got.json())
    assert got.json()["status"] == "waiting"
    patch = {"topic": "Moved", "start_time": "2030-02-01T10:00:00Z", "duration": 30}
    openapi.validate(openapi.UPDATE_REQUEST, patch)
    assert api.patch(f"/meetings/{meeting_id}", json=patch).status_code == 204
    after = api.get(f"/meetings/{meeting_id}").json()
    assert (after["topic"], after["start_time"], after["duration"]) == (
        "Moved",
        "2030-02-01T10:00:00Z",
        30,
    )
    assert api.delete(f"/meetings/{meeting_id}").status_code == 204
    for answer in (api.get(f"/meetings/{meeting_id}"), api.delete(f"/meetings/{meeting_id}")):
        assert answer.status_code == 404
        assert answer.json()["code"] == 3001


def test_topic_and_agenda_limits(api: httpx.Client) -> None:
    for field, size in (("topic", 201), ("agenda", 2001)):
        answer = api.post("/users/me/meetings", json=SCHEDULED | {field: "x" * size})
        assert answer.status_code == 400
        assert answer.json()["code"] == 300


def test_meetings_belong_to_their_creator(zoom: ZoomEmulator, api: httpx.Client) -> None:
    meeting_id = _create(api)["id"]
    other = zoom.add_user("bo@example.com")
    access, _ = zoom.grant_tokens(other.id)
    intruder = httpx.Client(base_url=zoom.api_base_url, headers=bearer(access))
    answers = [
        intruder.get(f"/meetings/{meeting_id}"),
        intruder.patch(f"/meetings/{meeting_id}", json={"topic": "mine"}),
        intruder.delete(f"/meetings/{meeting_id}"),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert [a.json()["code"] for a in answers] == [3000, 3003, 3003]
    assert api.get(f"/meetings/{meeting_id}").json()["topic"] == SCHEDULED["topic"]


def test_list_is_paginated_and_excludes_deleted(
    zoom: ZoomEmulator, api: httpx.Client, ana: EmulatedUser
) -> None:
    ids = [_create(api)["id"] for _ in range(5)]
    api.delete(f"/meetings/{ids[0]}")
    seen: list[int] = []
    params: dict[str, Any] = {"type": "scheduled", "page_size": 2}
    while True:
        page = api.get("/users/me/meetings", params=params).json()
        openapi.validate(openapi.LIST_RESPONSE, page)
        assert page["total_records"] == 4
        seen += [m["id"] for m in page["meetings"]]
        if not page["next_page_token"]:
            break
        params["next_page_token"] = page["next_page_token"]
    assert seen == ids[1:]
    assert [m.id for m in zoom.meetings(ana.id)] == ids[1:]


def test_invalid_token_is_code_124(zoom: ZoomEmulator) -> None:
    answer = httpx.get(f"{zoom.api_base_url}/users/me", headers=bearer("nope"))
    assert answer.status_code == 401
    assert answer.json() == {"code": 124, "message": "Invalid access token."}


def test_inactive_user_cannot_create(
    zoom: ZoomEmulator, api: httpx.Client, ana: EmulatedUser
) -> None:
    zoom.set_user_status(ana.id, "inactive")
    answer = api.post("/users/me/meetings", json=SCHEDULED)
    assert answer.status_code == 404
    assert answer.json()["code"] == 1001
