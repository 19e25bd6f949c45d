"""Hypothesis strategies for valid messages, built from the contract's own limits."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from schemas import (
    Attendee,
    EventCreated,
    EventDeleted,
    EventUpdated,
    FailedAction,
    FailureReason,
    LinkedAction,
    MeetingDetails,
    MeetingFailed,
    MeetingLinked,
    Organizer,
    ReplacedMeeting,
)
from schemas.fields import INT64_MAX

ZONES = sorted(zoneinfo.available_timezones())

# C0 controls and DEL: refused in ids and titles; free text keeps tab, line feed, carriage return.
CONTROL_CHARACTERS = "".join(map(chr, range(0x20))) + "\x7f"
LAYOUT_CHARACTERS = "\t\n\r"
TEXT_CONTROL_CHARACTERS = "".join(c for c in CONTROL_CHARACTERS if c not in LAYOUT_CHARACTERS)


# Text without surrogates (not encodable as UTF-8, so never on the wire); control characters
# included, so these are hostile unless a field takes anything.
def texts(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size)


def line_texts(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid for ids and titles: no C0 control character and no DEL (C1 controls are fine)."""
    alphabet = st.characters(codec="utf-8", exclude_characters=CONTROL_CHARACTERS)
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def free_texts(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid for a description or a name: like ``line_texts``, plus tab and line breaks."""
    alphabet = st.characters(codec="utf-8", exclude_characters=TEXT_CONTROL_CHARACTERS)
    layout = st.sampled_from(LAYOUT_CHARACTERS)
    return st.text(alphabet | layout, min_size=min_size, max_size=max_size)


@st.composite
def with_control(draw: st.DrawFn, text: str, controls: str = CONTROL_CHARACTERS) -> str:
    """``text`` with one of ``controls`` put in at its start, its end or anywhere between."""
    at = draw(st.sampled_from([0, len(text)]) | st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(controls)) + text[at:]


def _email_part() -> st.SearchStrategy[str]:
    # Anything but "@", whitespace and control characters: the contract's only demands.
    part = st.text(st.characters(codec="utf-8", exclude_characters="@"), min_size=1, max_size=30)
    return part.filter(lambda s: not any(c.isspace() or c < " " or c == "\x7f" for c in s))


emails = st.builds(lambda local, domain: f"{local}@{domain}", _email_part(), _email_part())
ids = line_texts(1, 64)
event_ids = line_texts(1, 128)
revisions = st.integers(0, INT64_MAX)

offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
# Zones with DST and historic offsets: hypothesis draws wall times in their folds (fold=0 and
# fold=1) and, where allowed, in their gaps (times that never happened on the wall clock).
zones = st.one_of(st.just(UTC), offsets, st.timezones())


def instants(*, allow_imaginary: bool) -> st.SearchStrategy[datetime]:
    return st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=zones,
        allow_imaginary=allow_imaginary,
    )


times = instants(allow_imaginary=False) | instants(allow_imaginary=True)

organizers = st.builds(Organizer, user_id=ids, email=emails)
attendees = st.builds(Attendee, email=emails, name=st.none() | free_texts(0, 256))


def _common() -> dict[str, Any]:
    return {
        "schema_version": st.just(1),
        "message_id": ids,
        "event_id": event_ids,
        "revision": revisions,
        "occurred_at": times,
        "organizer": organizers,
    }


@st.composite
def _upsert_fields(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(times)
    length = timedelta(microseconds=draw(st.integers(1, 24 * 3600 * 1_000_000)))
    # Added in UTC: wall-clock arithmetic in a zone can land before start across a DST change.
    end = (start.astimezone(UTC) + length).astimezone(draw(st.just(start.tzinfo) | zones))
    return {
        "title": draw(line_texts(1, 200)),
        "description": draw(st.none() | free_texts(0, 60) | st.just("d" * 2000)),
        "start": start,
        "end": end,
        "timezone": draw(st.sampled_from(ZONES)),
        "attendees": draw(st.lists(attendees, max_size=4)),
        "video_conference": draw(
            st.sampled_from(["zoom", "none", "google_meet"]) | line_texts(1, 64)
        ),
    }


def _upserts(model: type[EventCreated] | type[EventUpdated]) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda common, fields: model(**common, **fields),
        st.fixed_dictionaries(_common()),
        _upsert_fields(),
    )


events_created = _upserts(EventCreated)
events_updated = _upserts(EventUpdated)
events_deleted = st.builds(EventDeleted, **_common())

meeting_details = st.builds(
    MeetingDetails,
    id=st.integers(1, INT64_MAX),
    join_url=st.builds(lambda n: f"https://us06web.zoom.us/j/{n}", st.integers(1, 10**11)),
    password=st.none() | texts(0, 10),
    topic=texts(0, 200),
    start_time=times,
    duration=st.integers(1, 1440),
    timezone=st.none() | st.sampled_from(ZONES),
)


@st.composite
def replaced_meetings(draw: st.DrawFn) -> ReplacedMeeting:
    cancelled = draw(st.booleans())
    return ReplacedMeeting(
        id=draw(st.integers(1, INT64_MAX)),
        organizer_user_id=draw(ids),
        cancelled=cancelled,
        reason=None if cancelled else draw(st.sampled_from(FailureReason)),
    )


@st.composite
def meetings_linked(draw: st.DrawFn) -> MeetingLinked:
    action = draw(st.sampled_from(LinkedAction))
    details = draw(meeting_details)
    if action is LinkedAction.CANCELLED:
        details = MeetingDetails(id=details.id)
    return MeetingLinked(
        message_id=draw(ids),
        correlation_id=draw(ids),
        event_id=draw(event_ids),
        revision=draw(revisions),
        organizer_user_id=draw(ids),
        action=action,
        meeting=details,
        linked_at=draw(times),
        replaced_meeting=draw(st.none() | replaced_meetings()),
    )


meetings_failed = st.builds(
    MeetingFailed,
    message_id=ids,
    correlation_id=ids,
    event_id=st.none() | event_ids,
    revision=st.none() | revisions,
    organizer_user_id=st.none() | ids,
    action=st.none() | st.sampled_from(FailedAction),
    reason=st.sampled_from(FailureReason),
    message=texts(1, 200),
    retryable=st.booleans(),
    attempts=st.integers(0, 100),
    failed_at=times,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts(0, 20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(0, 10), inner, max_size=4),
    max_leaves=12,
)
