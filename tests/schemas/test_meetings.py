"""The messages the worker publishes: meeting.linked and meeting.failed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    SENTENCES,
    ContractError,
    FailedAction,
    FailureReason,
    LinkedAction,
    MeetingDetails,
    MeetingFailed,
    MeetingLinked,
    parse_failed,
    parse_linked,
)
from tests.schemas.contract_files import schema_errors

AT = datetime(2025, 3, 3, 9, 15, 3, 870000, tzinfo=UTC)

# What Zoom answers to POST /users/me/meetings, trimmed (see meetings-openapi.json).
ZOOM_ANSWER: dict[str, Any] = {
    "id": 85746065432,
    "uuid": "aDYlohsHRtCd4ii1uC2+hA==",
    "host_id": "z8yCxjabR7KkVqmz0zNcSw",
    "topic": "Interview: Backend Engineer - Sam Lee",
    "type": 2,
    "start_time": "2025-03-10T13:00:00Z",
    "duration": 45,
    "timezone": "Europe/Berlin",
    "start_url": "https://us06web.zoom.us/s/85746065432?zak=eyJ0eXAiOiJKV1QiLCJzdiI6IjAwMDAwMSJ9",
    "join_url": "https://us06web.zoom.us/j/85746065432?pwd=Zk9Rb2hY",
    "password": "a1B2c3",
}


def linked(action: LinkedAction | str, meeting: MeetingDetails) -> MeetingLinked:
    return MeetingLinked(
        message_id="lnk-1",
        correlation_id="msg-1",
        event_id="evt-1",
        revision=4,
        organizer_user_id="usr-1",
        action=action,
        meeting=meeting,
        linked_at=AT,
    )


def failed(**changes: Any) -> MeetingFailed:
    fields: dict[str, Any] = {
        "message_id": "fail-1",
        "correlation_id": "msg-1",
        "event_id": "evt-1",
        "revision": 4,
        "organizer_user_id": "usr-1",
        "action": FailedAction.CREATE,
        "reason": FailureReason.ZOOM_NOT_CONNECTED,
        "message": FailureReason.ZOOM_NOT_CONNECTED.sentence,
        "retryable": False,
        "attempts": 1,
        "failed_at": AT,
    }
    return MeetingFailed(**{**fields, **changes})


def test_linked_never_carries_the_hosts_start_url() -> None:
    message = linked(LinkedAction.CREATED, MeetingDetails.model_validate(ZOOM_ANSWER))
    wire = message.to_bytes()
    assert b"start_url" not in wire
    assert b"zak=" not in wire
    assert json.loads(wire)["meeting"] == {
        "id": 85746065432,
        "join_url": ZOOM_ANSWER["join_url"],
        "password": "a1B2c3",
        "topic": ZOOM_ANSWER["topic"],
        "start_time": "2025-03-10T13:00:00Z",
        "duration": 45,
        "timezone": "Europe/Berlin",
    }
    assert schema_errors("meeting.linked", json.loads(wire)) == []


def test_linked_to_bytes_is_compact_json_with_rfc3339_times() -> None:
    wire = linked("updated", MeetingDetails.model_validate(ZOOM_ANSWER)).to_bytes()
    compact = json.dumps(json.loads(wire), separators=(",", ":"), ensure_ascii=False)
    assert wire == compact.encode()
    assert json.loads(wire)["linked_at"] == "2025-03-03T09:15:03.870000Z"
    assert json.loads(wire)["action"] == "updated"
    assert parse_linked(wire).action is LinkedAction.UPDATED


def test_password_is_omitted_when_the_meeting_has_none() -> None:
    meeting = MeetingDetails.model_validate({**ZOOM_ANSWER, "password": None})
    assert "password" not in json.loads(linked("created", meeting).to_bytes())["meeting"]


def test_cancelled_carries_only_the_meeting_id() -> None:
    wire = linked(LinkedAction.CANCELLED, MeetingDetails(id=85746065432)).to_bytes()
    assert json.loads(wire)["meeting"] == {"id": 85746065432}
    assert schema_errors("meeting.linked", json.loads(wire)) == []
    assert parse_linked(wire).meeting.join_url is None


def test_created_and_updated_need_the_join_details() -> None:
    with pytest.raises(
        ValidationError, match="meeting needs join_url, topic, start_time, duration"
    ):
        linked(LinkedAction.CREATED, MeetingDetails(id=1))
    partial = json.loads(linked("cancelled", MeetingDetails(id=1)).to_bytes())
    partial["action"] = "created"
    assert schema_errors("meeting.linked", partial) != []
    with pytest.raises(ContractError, match="meeting needs join_url"):
        parse_linked(json.dumps(partial).encode())


def test_output_times_keep_their_offset_as_rfc3339() -> None:
    berlin = datetime(2025, 3, 10, 14, 0, tzinfo=timezone(timedelta(hours=1)))
    meeting = MeetingDetails.model_validate({**ZOOM_ANSWER, "start_time": berlin})
    assert json.loads(linked("created", meeting).to_bytes())["meeting"]["start_time"] == (
        "2025-03-10T14:00:00+01:00"
    )


def test_failed_writes_unknown_ids_as_null() -> None:
    message = failed(
        event_id=None,
        revision=None,
        organizer_user_id=None,
        action=None,
        reason=FailureReason.INVALID_EVENT,
        message=SENTENCES[FailureReason.INVALID_EVENT],
        correlation_id="event.created/3/18842",
    )
    document = json.loads(message.to_bytes())
    assert {k: document[k] for k in ("event_id", "revision", "organizer_user_id", "action")} == {
        "event_id": None,
        "revision": None,
        "organizer_user_id": None,
        "action": None,
    }
    assert schema_errors("meeting.failed", document) == []
    assert parse_failed(message.to_bytes()) == message


@pytest.mark.parametrize("reason", list(FailureReason), ids=str)
def test_every_reason_is_in_the_schema_and_round_trips(reason: FailureReason) -> None:
    message = failed(reason=reason, message=reason.sentence, retryable=True, attempts=3)
    document = json.loads(message.to_bytes())
    assert document["reason"] == reason.value
    assert schema_errors("meeting.failed", document) == []
    assert parse_failed(message.to_bytes()).reason is reason


def test_failed_rejects_unknown_reasons_and_naive_times() -> None:
    document = json.loads(failed().to_bytes())
    with pytest.raises(ContractError) as caught:
        parse_failed(json.dumps({**document, "reason": "zoom_on_fire"}).encode())
    assert caught.value.field == "reason"
    assert schema_errors("meeting.failed", {**document, "reason": "zoom_on_fire"}) != []
    with pytest.raises(ValidationError, match="must have a UTC offset"):
        failed(failed_at=datetime(2025, 3, 3, 9, 15))


def test_failed_needs_its_ids_even_when_null() -> None:
    document = json.loads(failed().to_bytes())
    del document["event_id"]
    with pytest.raises(ContractError, match="event_id: required"):
        parse_failed(json.dumps(document).encode())
    assert schema_errors("meeting.failed", document) != []


def test_failed_counts_are_strict() -> None:
    with pytest.raises(ValidationError):
        failed(attempts="3")
    with pytest.raises(ValidationError):
        failed(retryable="no")
    with pytest.raises(ValidationError):
        failed(attempts=-1)
