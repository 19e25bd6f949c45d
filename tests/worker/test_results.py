"""Results are pure: deterministic ids, the contract's shape, stale sources re-correlated."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas import FailureReason, LinkedAction, ReplacedMeeting, parse_event, parse_linked
from tests.schemas.contract_files import schema_errors
from tests.worker.harness import event
from worker.pipeline.decision import Create, wanted_meeting
from worker.pipeline.failures import Failure
from worker.pipeline.links import Link
from worker.pipeline.pending import Answer
from worker.pipeline.results import answer_for, failed, linked, result_message_id

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def source(revision: int, **changes: object):  # type: ignore[no-untyped-def]
    return parse_event("created", json.dumps(event("e1", revision, **changes)).encode())  # type: ignore[arg-type]


def stored_link(revision: int) -> Link:
    wanted = wanted_meeting(source(revision))
    return Link(
        "e1", "ana", "linked", revision, zoom_meeting_id=42, join_url="https://zoom.us/j/42",
        title=wanted.topic, start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes, timezone=wanted.timezone,
    )  # fmt: skip


def test_result_ids_are_deterministic_per_source() -> None:
    assert result_message_id("m-1") == result_message_id("m-1")
    assert result_message_id("m-1") != result_message_id("m-2")


def test_a_cancelled_result_carries_only_the_meeting_id() -> None:
    result = linked(source(2), stored_link(2), LinkedAction.CANCELLED, NOW)
    assert result.model_dump(exclude_none=True)["meeting"] == {"id": 42}


def test_a_created_result_carries_the_meeting_and_never_a_start_url() -> None:
    src = source(1)
    result = json.loads(linked(src, stored_link(1), LinkedAction.CREATED, NOW).to_bytes())
    assert result["correlation_id"] == src.message_id
    assert result["meeting"]["join_url"] == "https://zoom.us/j/42"
    assert "start_url" not in json.dumps(result)


def test_an_exact_redelivery_gets_the_stored_bytes_and_an_older_source_is_recorrelated() -> None:
    newest = source(3)
    stored = linked(newest, stored_link(3), LinkedAction.UPDATED, NOW).to_bytes()
    link = stored_link(3).evolve(
        last_message_id=newest.message_id, last_result=stored, last_result_topic="linked"
    )
    assert answer_for(newest, answer_of(link), "linked") == stored
    older = source(1)
    answer = parse_linked(answer_for(older, answer_of(link), "linked"))
    assert answer.correlation_id == older.message_id
    assert answer.message_id == result_message_id(older.message_id)
    assert answer.revision == 3  # the current truth, not the stale request


def test_a_failure_names_the_action_and_the_reason_sentence() -> None:
    from schemas import FailureReason

    src = source(1)
    failure = Failure(FailureReason.ZOOM_NOT_CONNECTED, False, 1, "NotConnected")
    result = failed(src, Create(wanted_meeting(src), recover=False), failure, NOW)
    assert (result.action, result.reason) == ("create", "zoom_not_connected")
    assert result.message.startswith("User has not authorized Zoom access")


def test_a_handover_result_says_what_became_of_the_old_meeting() -> None:
    src = source(2, organizer="bruno")
    left = ReplacedMeeting(
        id=7, organizer_user_id="ana", cancelled=False, reason=FailureReason.ZOOM_NOT_CONNECTED
    )
    wire = json.loads(linked(src, stored_link(2), LinkedAction.CREATED, NOW, left).to_bytes())
    assert wire["replaced_meeting"] == {
        "id": 7,
        "organizer_user_id": "ana",
        "cancelled": False,
        "reason": "zoom_not_connected",
    }
    assert schema_errors("meeting.linked", wire) == []
    plain = json.loads(linked(src, stored_link(2), LinkedAction.CREATED, NOW).to_bytes())
    assert "replaced_meeting" not in plain
    with pytest.raises(ValidationError):  # left without a reason
        ReplacedMeeting(id=7, organizer_user_id="ana", cancelled=False)
    with pytest.raises(ValidationError):  # cancelled, yet a reason
        ReplacedMeeting(
            id=7, organizer_user_id="ana", cancelled=True, reason=FailureReason.ZOOM_UNAVAILABLE
        )
    no_reason = {"id": 7, "organizer_user_id": "ana", "cancelled": False}
    assert schema_errors("meeting.linked", wire | {"replaced_meeting": no_reason})


def answer_of(link: Link) -> Answer:
    assert link.answer is not None
    return link.answer
