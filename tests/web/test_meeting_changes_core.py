"""What a Zoom meeting webhook means (connect/meeting_events.py, connect/meeting_changes.py):
the pure rules, one behaviour per case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connect.errors import WebhookMalformed
from connect.meeting_changes import Ignore, LinkView, Moved, Publish, Unlinked, decide, message_id
from connect.meeting_events import ZoomMeetingEvent, read
from connect.webhook import WebhookEvent
from schemas import MeetingChange

MEETING = 85746065432
START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
WRITTEN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # the link's last write
LATER_MS = int((WRITTEN + timedelta(minutes=5)).timestamp() * 1000)

LINK = LinkView(
    event_id="evt_1",
    state="linked",
    seen_revision=3,
    zoom_meeting_id=MEETING,
    host_user_id="ana",
    title="Interview",
    start_time=START,
    duration_minutes=30,
    timezone="Europe/Madrid",
    updated_at=WRITTEN,
    connected_zoom_user_id="zoom-ana",
)


def zoom_event(kind: str, meeting: dict[str, Any], *, event_ts: int = LATER_MS) -> ZoomMeetingEvent:
    payload = {"account_id": "acc", "object": {"id": MEETING, **meeting}}
    return read(WebhookEvent(kind, payload, "d", event_ts // 1000, event_ts))


def test_a_host_move_is_published_with_the_meeting_as_zoom_has_it_and_stored() -> None:
    event = zoom_event("meeting.updated", {"start_time": "2026-12-01T16:00:00Z", "duration": 45})
    decision = decide(event, LINK, published_before=False)
    assert isinstance(decision, Publish)
    message = decision.message
    assert message.change is MeetingChange.UPDATED_ON_ZOOM
    assert message.changed == ("start_time", "duration")
    assert (message.meeting.topic, message.meeting.duration) == ("Interview", 45)
    assert message.meeting.start_time == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    assert (message.event_id, message.revision, message.organizer_user_id) == ("evt_1", 3, "ana")
    assert message.occurred_at == event.occurred_at
    assert decision.store == Moved("Interview", message.meeting.start_time, 45, "Europe/Madrid")


@pytest.mark.parametrize(
    ("case", "kind", "meeting", "link", "why"),
    [
        ("echo_of_the_workers_update", "meeting.updated",
         {"topic": "Interview", "start_time": "2026-12-01T15:00:00Z"}, LINK, "echo"),
        ("echo_in_another_offset", "meeting.updated",
         {"start_time": "2026-12-01T16:00:00+01:00"}, LINK, "echo"),
        ("agenda_only", "meeting.updated", {"agenda": "New agenda"}, LINK, "not_tracked"),
        ("older_than_the_workers_last_write", "meeting.updated", {"duration": 90},
         replace(LINK, updated_at=WRITTEN + timedelta(hours=1)), "superseded"),
        ("a_newer_host_change_set_that_field", "meeting.updated", {"duration": 90},
         replace(LINK, zoom_field_times={"duration": WRITTEN + timedelta(hours=1)}),
         "superseded"),
        ("echo_of_the_workers_cancel", "meeting.deleted", {},
         replace(LINK, state="cancelled"), "echo"),
        ("echo_of_the_workers_delete", "meeting.deleted", {},
         replace(LINK, state="deleted"), "echo"),
        ("no_link", "meeting.deleted", {}, None, "unknown_meeting"),
        ("link_names_another_meeting", "meeting.updated", {"duration": 90},
         replace(LINK, zoom_meeting_id=1), "unknown_meeting"),
        ("host_disconnected", "meeting.updated", {"duration": 90},
         replace(LINK, connected_zoom_user_id=None), "not_connected"),
        ("host_now_another_zoom_user", "meeting.started", {"host_id": "zoom-old"},
         LINK, "not_connected"),
        ("one_occurrence", "meeting.deleted", {"occurrences": [{"occurrence_id": "1"}]},
         LINK, "occurrence"),
        ("meeting_being_made_again", "meeting.updated", {"duration": 90},
         replace(LINK, state="creating"), "not_linked"),
    ],
)  # fmt: skip
def test_what_is_not_a_host_change_publishes_nothing(
    case: str, kind: str, meeting: dict[str, Any], link: LinkView | None, why: str
) -> None:
    assert decide(zoom_event(kind, meeting), link, published_before=False) == Ignore(why)  # type: ignore[arg-type]


def test_a_late_host_change_sets_only_the_fields_no_newer_one_set() -> None:
    newer = WRITTEN + timedelta(hours=1)
    link = replace(LINK, duration_minutes=60, zoom_field_times={"duration": newer})
    late = zoom_event("meeting.updated", {"topic": "Renamed", "duration": 90})
    decision = decide(late, link, published_before=False)
    assert isinstance(decision, Publish)
    assert decision.message.changed == ("topic",)
    assert (decision.message.meeting.topic, decision.message.meeting.duration) == ("Renamed", 60)
    assert decision.store == Moved("Renamed", START, 60, "Europe/Madrid")


def test_a_delete_unlinks_and_started_ended_change_nothing_stored() -> None:
    deleted = decide(zoom_event("meeting.deleted", {}), LINK, published_before=False)
    assert isinstance(deleted, Publish) and deleted.store == Unlinked()
    assert deleted.message.change is MeetingChange.DELETED_ON_ZOOM
    assert deleted.message.meeting.model_dump(exclude_none=True) == {"id": MEETING}
    for kind, change in (("meeting.started", "started"), ("meeting.ended", "ended")):
        decision = decide(zoom_event(kind, {"host_id": "zoom-ana"}), LINK, published_before=False)
        assert isinstance(decision, Publish) and decision.store is None
        assert decision.message.change.value == change and decision.message.changed is None


def test_a_retry_of_a_published_event_has_the_same_id_and_publishes_nothing() -> None:
    first = zoom_event("meeting.started", {})
    retry = zoom_event("meeting.started", {"topic": "anything"})
    assert message_id(first) == message_id(retry)
    assert message_id(first) != message_id(zoom_event("meeting.ended", {}))
    assert message_id(first) != message_id(zoom_event("meeting.started", {}, event_ts=LATER_MS + 1))
    assert decide(retry, LINK, published_before=True) == Ignore("duplicate")


@pytest.mark.parametrize(
    ("case", "payload", "event_ts"),
    [
        ("no_object", {}, LATER_MS),
        ("no_meeting_id", {"object": {"topic": "x"}}, LATER_MS),
        ("meeting_id_not_a_number", {"object": {"id": "12a"}}, LATER_MS),
        ("no_event_time", {"object": {"id": 1}}, None),
        ("start_not_a_time", {"object": {"id": 1, "start_time": "tomorrow"}}, LATER_MS),
        ("duration_a_string", {"object": {"id": 1, "duration": "30"}}, LATER_MS),
        ("timezone_with_a_newline", {"object": {"id": 1, "timezone": "UTC\n"}}, LATER_MS),
    ],
)
def test_signed_but_unreadable_meeting_events_are_malformed(
    case: str, payload: dict[str, Any], event_ts: int | None
) -> None:
    with pytest.raises(WebhookMalformed):
        read(WebhookEvent("meeting.updated", payload, "d", 0, event_ts))


def test_reading_keeps_text_within_the_contract() -> None:
    event = zoom_event(
        "meeting.updated",
        {"topic": "A\ttopic\x00" + "x" * 300, "start_time": "2026-12-01T16:00:00"},
    )
    assert event.reported.topic is not None and len(event.reported.topic) == 200
    assert event.reported.topic.startswith("A topic ")
    assert event.reported.start_time == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    with_zone = zoom_event(
        "meeting.updated", {"start_time": "2026-12-01T16:00:00", "timezone": "Europe/Madrid"}
    )
    assert with_zone.reported.start_time == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    string_id = read(WebhookEvent("meeting.ended", {"object": {"id": str(MEETING)}}, "d", 0, 5))
    assert string_id.meeting_id == MEETING and string_id.event_ts == 5
