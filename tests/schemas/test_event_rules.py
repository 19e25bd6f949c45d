"""Each rule of the calendar-event contract, one concrete case at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    ContractError,
    EventCreated,
    EventDeleted,
    EventUpdated,
    EventUpsert,
    parse_event,
)


def created(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": 1,
        "message_id": "msg-1",
        "event_id": "evt-1",
        "revision": 0,
        "occurred_at": "2025-03-03T09:15:02Z",
        "organizer": {"user_id": "usr-1", "email": "dana@example.com"},
        "title": "Interview",
        "start": "2025-03-10T14:00:00+01:00",
        "end": "2025-03-10T14:45:00+01:00",
        "timezone": "Europe/Berlin",
        "attendees": [{"email": "sam@example.org", "name": "Sam"}],
        "video_conference": "zoom",
    }
    for key, value in changes.items():
        if value is ...:
            del message[key]
        else:
            message[key] = value
    return message


def parse(message: dict[str, Any], kind: str = "created") -> Any:
    return parse_event(kind, json.dumps(message).encode())  # type: ignore[arg-type]


def rejection(message: dict[str, Any], kind: str = "created") -> ContractError:
    with pytest.raises(ContractError) as caught:
        parse(message, kind)
    return caught.value


def test_valid_message_parses_into_the_right_model() -> None:
    event = parse(created())
    assert type(event) is EventCreated
    assert event.start == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert event.organizer.email == "dana@example.com"
    assert event.attendees[0].name == "Sam"
    assert type(parse(created(), "updated")) is EventUpdated
    assert type(parse(created(), "deleted")) is EventDeleted


def test_deleted_is_not_an_upsert() -> None:
    # The worker dispatches on type; a deletion must never look like an upsert.
    assert not isinstance(parse(created(), "deleted"), EventUpsert)
    assert isinstance(parse(created(), "updated"), EventUpsert)


def test_models_are_frozen() -> None:
    event = parse(created())
    with pytest.raises(ValidationError):
        event.title = "changed"


@pytest.mark.parametrize(
    ("end", "why"),
    [
        pytest.param("2025-03-10T14:00:00+01:00", "must be after start", id="equal-to-start"),
        pytest.param("2025-03-10T13:59:59+01:00", "must be after start", id="before-start"),
        pytest.param("2025-03-10T12:59:59Z", "must be after start", id="before-start-other-offset"),
        pytest.param(
            "2025-03-11T13:00:00.000001Z", "must be at most 24 hours after start", id="over-24h"
        ),
    ],
)
def test_end_must_be_after_start_and_within_24_hours(end: str, why: str) -> None:
    error = rejection(created(end=end))
    assert (error.field, error.why) == ("end", why)
    assert str(error) == f"end: {why}"


def test_exactly_24_hours_is_allowed() -> None:
    assert parse(created(end="2025-03-11T14:00:00+01:00")).duration_minutes == 24 * 60


@pytest.mark.parametrize(
    ("end", "minutes"),
    [
        pytest.param("2025-03-10T14:00:01+01:00", 1, id="one-second-rounds-up"),
        pytest.param("2025-03-10T14:30:00+01:00", 30, id="whole-minutes"),
        pytest.param("2025-03-10T14:30:00.5+01:00", 31, id="fraction-rounds-up"),
    ],
)
def test_duration_minutes_is_rounded_up(end: str, minutes: int) -> None:
    assert parse(created(end=end)).duration_minutes == minutes


@pytest.mark.parametrize(
    ("provider", "wanted"),
    [("zoom", True), ("none", False), ("google_meet", False), ("Zoom", False)],
)
def test_only_zoom_is_ours(provider: str, wanted: bool) -> None:
    assert parse(created(video_conference=provider)).wants_zoom is wanted


def test_attendees_may_be_empty_or_absent_and_hold_at_most_300() -> None:
    assert parse(created(attendees=[])).attendees == ()
    assert parse(created(attendees=...)).attendees == ()
    many = [{"email": f"a{i}@example.com"} for i in range(300)]
    assert len(parse(created(attendees=many)).attendees) == 300
    error = rejection(created(attendees=[*many, {"email": "one@too.many"}]))
    assert str(error) == "attendees: must have at most 300 items"


@pytest.mark.parametrize(
    ("title", "ok"),
    [("x", True), ("x" * 200, True), ("", False), ("x" * 201, False), ("é" * 200, True)],
    ids=["1", "200", "empty", "201", "200-non-ascii"],
)
def test_title_is_1_to_200_characters(title: str, ok: bool) -> None:
    if ok:
        assert parse(created(title=title)).title == title
    else:
        assert rejection(created(title=title)).field == "title"


def test_description_is_optional_and_at_most_2000() -> None:
    assert parse(created(description=None)).description is None
    assert parse(created(description="d" * 2000)).description == "d" * 2000
    assert str(rejection(created(description="d" * 2001))) == (
        "description: must be at most 2000 characters"
    )


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC"])
def test_iana_time_zones_are_accepted(zone: str) -> None:
    assert parse(created(timezone=zone)).timezone == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "europe/berlin", "CEST", "+01:00", ""])
def test_other_time_zones_are_rejected(zone: str) -> None:
    assert rejection(created(timezone=zone)).field == "timezone"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2025-03-10T14:00:00", id="no-offset"),
        pytest.param("2025-03-10", id="date-only"),
        pytest.param("2025-03-10 14:00:00Z", id="space-separator"),
        pytest.param("2025-03-10T14:00Z", id="no-seconds"),
        pytest.param("2025-02-30T14:00:00Z", id="no-such-day"),
        pytest.param("2025-03-10T14:00:00+0100", id="offset-without-colon"),
        pytest.param("1741615200", id="unix-text"),
        pytest.param(1741615200, id="unix-number"),
        pytest.param(1741615200.5, id="unix-float"),
        pytest.param(None, id="null"),
    ],
)
@pytest.mark.parametrize("field", ["start", "end", "occurred_at"])
def test_times_must_be_rfc3339_with_offset(field: str, value: object) -> None:
    error = rejection(created(**{field: value}))
    assert str(error).startswith(f"{field}: not an RFC 3339 time")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-10t13:00:00z", datetime(2025, 3, 10, 13, 0, tzinfo=UTC)),
        ("2025-03-10T13:00:00-00:00", datetime(2025, 3, 10, 13, 0, tzinfo=UTC)),
        ("2025-03-10T08:00:00.25-05:00", datetime(2025, 3, 10, 13, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_rfc3339_variants_are_accepted(value: str, expected: datetime) -> None:
    assert parse(created(occurred_at=value)).occurred_at == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param("9999-12-31T22:00:00-14:00", "9999-12-31T23:00:00-14:00", id="year-10000"),
        pytest.param("0001-01-01T00:30:00+14:00", "0001-01-01T01:30:00+14:00", id="year-0"),
    ],
)
def test_times_past_either_end_of_the_calendar_in_utc_are_refused(start: str, end: str) -> None:
    # Valid RFC 3339, and valid dates where written; not once moved to UTC.
    error = rejection(created(start=start, end=end))
    assert (error.field, error.why) == (
        "start",
        "must fall within years 0001-9999 once moved to UTC",
    )
    assert [field for field, _ in error.problems] == ["start", "end"]
    assert rejection(created(occurred_at=start)).field == "occurred_at"
    assert rejection(created(**{"revision": 1, "occurred_at": start}), "deleted").field == (
        "occurred_at"
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("9999-12-31T23:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:00:00-00:59", "9999-12-31T23:00:30-00:59"),
        ("0001-01-01T00:00:00Z", "0001-01-01T01:00:00+00:30"),
        ("0001-06-01T10:00:00Z", "0001-06-01T11:00:00Z"),
    ],
)
def test_the_first_and_last_instants_of_the_calendar_in_utc_are_accepted(
    start: str, end: str
) -> None:
    event = parse(created(start=start, end=end))
    assert event.start == datetime.fromisoformat(start)
    assert event.start.astimezone(UTC).year in (1, 9999)


def test_times_in_python_must_be_timezone_aware() -> None:
    fields = parse(created()).model_dump()
    with pytest.raises(ValidationError, match="must have a UTC offset"):
        EventCreated(**{**fields, "occurred_at": datetime(2025, 3, 10, 13, 0)})
    aware = datetime(2025, 3, 10, 13, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert EventCreated(**{**fields, "occurred_at": aware}).occurred_at == aware


def test_unknown_fields_are_ignored() -> None:
    event = parse(created(color="blue", organizer={"user_id": "u", "email": "u@x.io", "team": "t"}))
    assert "color" not in event.model_dump()
    assert event.organizer.user_id == "u"


@pytest.mark.parametrize(
    "version", [0, 2, "1", 1.0, True, None], ids=["0", "2", "text", "float", "true", "null"]
)
def test_only_schema_version_1_is_read(version: object) -> None:
    assert rejection(created(schema_version=version)).field == "schema_version"


def test_schema_version_is_required_and_reported_first() -> None:
    assert str(rejection(created(schema_version=...))).startswith("schema_version: required")
    error = rejection(created(schema_version=2, title="", end="soon"))
    assert error.field == "schema_version"
    assert "accepts 1" in error.why
    assert {field for field, _ in error.problems} == {"schema_version", "title", "end"}
    assert str(error).endswith("(and 2 more problems)")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"event_id": "e" * 129}, "event_id: must be at most 128 characters", id="id"),
        pytest.param({"event_id": ""}, "event_id: must not be empty", id="empty-id"),
        pytest.param({"event_id": 7}, "event_id: must be a string", id="numeric-id"),
        pytest.param({"revision": -1}, "revision: must be at least 0", id="negative"),
        pytest.param({"revision": "3"}, "revision: must be an integer", id="text-revision"),
        pytest.param({"revision": 2**63}, "revision: must be at most", id="over-bigint"),
        pytest.param({"organizer": "usr-1"}, "organizer: must be an object", id="organizer"),
        pytest.param(
            {"organizer": {"user_id": "u", "email": "not-an-email"}},
            "organizer.email: not an email address",
            id="organizer-email",
        ),
        pytest.param(
            {"attendees": [{"email": "a@b"}, {"name": "no email"}]},
            "attendees.1.email: required",
            id="attendee-email",
        ),
        pytest.param({"video_conference": ...}, "video_conference: required", id="provider"),
    ],
)
def test_field_rules_name_the_field(changes: dict[str, Any], expected: str) -> None:
    assert str(rejection(created(**changes))).startswith(expected)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"\xff\xfe{}", "not valid UTF-8 JSON", id="bad-utf8"),
        pytest.param(b"{", "not valid UTF-8 JSON", id="truncated"),
        pytest.param(b"", "not valid UTF-8 JSON", id="empty"),
        pytest.param(b"[]", "message must be a JSON object", id="array"),
        pytest.param(b"null", "message must be a JSON object", id="null"),
    ],
)
def test_unreadable_messages_have_no_field(data: bytes, expected: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_event("created", data)
    assert caught.value.field is None
    assert str(caught.value) == expected


def test_deleted_needs_only_the_common_fields() -> None:
    minimal = {
        key: created()[key]
        for key in ("schema_version", "message_id", "event_id", "revision", "occurred_at")
    }
    event = parse({**minimal, "organizer": {"user_id": "u", "email": "u@x.io"}}, "deleted")
    assert event.event_id == "evt-1"
    assert rejection(minimal, "deleted").field == "organizer"


def test_errors_do_not_echo_values() -> None:
    secret_looking = "attendee-private@example.com"
    error = rejection(created(attendees=[{"email": secret_looking, "name": 5}]))
    assert secret_looking not in str(error)
