"""A model holds the instants its wire form carries, across DST folds and gaps.

Python compares and subtracts two datetimes sharing one ``tzinfo`` by wall clock, ignoring
``fold``: 01:30 and 01:30 one hour later are "equal" in a fold, and a wall time in a gap names
an instant before a later-looking wall time. Models therefore hold fixed offsets, so that one
never accepts an event its own parser would refuse, and ``end - start`` is the real duration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas import ContractError, EventCreated, parse_event
from schemas.fields import Rfc3339Time
from tests.schemas import strategies as s
from tests.schemas.test_agreement import MODELS, parse

HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JERSEY = ZoneInfo("Europe/Jersey")
BERLIN = ZoneInfo("Europe/Berlin")
# 1943-10-04 02:00 happened twice in Jersey: at +02:00 (fold=0), then at +01:00 (fold=1).
JERSEY_FOLD = datetime(1943, 10, 4, 2, 0, fold=1, tzinfo=JERSEY)
# 2025-03-30 02:30 never happened in Berlin (02:00 became 03:00).
BERLIN_GAP = datetime(2025, 3, 30, 2, 30, tzinfo=BERLIN)

WIRE_TIME = TypeAdapter(Rfc3339Time)

# Any zone, any fold, inside gaps or not: what a Python caller may hand a model.
any_times = st.one_of(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.timezones(),
        allow_imaginary=allow,
    )
    for allow in (False, True)
)


def fields(start: datetime, end: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "message_id": "msg-1",
        "event_id": "evt-1",
        "revision": 0,
        "occurred_at": start,
        "organizer": {"user_id": "usr-1", "email": "dana@example.com"},
        "title": "Interview",
        "start": start,
        "end": end,
        "timezone": "Europe/Berlin",
        "video_conference": "zoom",
        **changes,
    }


def on_the_wire(start: datetime, end: datetime) -> bytes:
    """The message as a producer would write these times, each as RFC 3339 with its offset."""
    text = {k: WIRE_TIME.dump_python(v, mode="json") for k, v in fields(start, end).items()
            if isinstance(v, datetime)}  # fmt: skip
    return json.dumps({**fields(start, end), **text}).encode()


def outcome(build: Any) -> tuple[str, Any]:
    try:
        return "accepted", build()
    except (ValidationError, ContractError) as exc:
        return "refused", exc


@HYPOTHESIS
@given(
    start=any_times,
    wall=st.timedeltas(timedelta(hours=-3), timedelta(hours=3))
    | st.timedeltas(timedelta(hours=21), timedelta(hours=27))
    | st.just(timedelta(microseconds=1)),
    fold=st.sampled_from([0, 1]),
)
@example(start=JERSEY_FOLD, wall=timedelta(microseconds=1), fold=0)  # found by hypothesis
@example(start=JERSEY_FOLD.replace(fold=0), wall=timedelta(hours=1), fold=1)
@example(start=BERLIN_GAP, wall=timedelta(minutes=30), fold=0)  # end 03:00 is before 02:30
@example(start=BERLIN_GAP.replace(fold=1), wall=timedelta(minutes=30), fold=0)
@example(start=datetime(2025, 10, 25, 3, 0, tzinfo=BERLIN), wall=timedelta(hours=24), fold=0)
@example(start=datetime(2025, 3, 29, 3, 0, tzinfo=BERLIN), wall=timedelta(hours=24), fold=0)
def test_a_model_accepts_exactly_the_events_its_wire_form_does(
    start: datetime, wall: timedelta, fold: int
) -> None:
    # Wall-clock arithmetic in the start's zone, as a caller would do it: across a DST change
    # the end may come before the start, or more than 24 hours after it.
    end = (start + wall).replace(fold=fold)
    model = outcome(lambda: EventCreated(**fields(start, end)))
    wire = outcome(lambda: parse_event("created", on_the_wire(start, end)))
    assert model[0] == wire[0], (model[1], wire[1])
    if model[0] == "accepted":
        event: EventCreated = model[1]
        assert wire[1] == event
        assert parse_event("created", event.to_bytes()) == event
        assert event.end - event.start == end.astimezone(UTC) - start.astimezone(UTC)


@pytest.mark.parametrize("topic", MODELS)
@HYPOTHESIS
@given(data=st.data())
def test_every_model_instance_round_trips_through_its_wire_form(
    topic: str, data: st.DataObject
) -> None:
    model = data.draw(MODELS[topic][1])
    assert parse(topic, model.to_bytes()) == model


@HYPOTHESIS
@given(value=any_times | s.times)
@example(value=JERSEY_FOLD)
@example(value=JERSEY_FOLD.replace(fold=0))
@example(value=BERLIN_GAP)
@example(value=BERLIN_GAP.replace(fold=1))
@example(value=datetime(1900, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam")))  # LMT, +00:19:32
def test_a_time_is_held_as_the_instant_and_offset_it_is_written_with(value: datetime) -> None:
    held = WIRE_TIME.validate_python(value)
    # The same instant (not "held == value": Python never calls a time in a fold equal to one
    # in another zone).
    assert held.astimezone(UTC) == value.astimezone(UTC)
    assert type(held.tzinfo) is timezone  # a fixed offset, nothing for fold to change
    assert WIRE_TIME.validate_json(WIRE_TIME.dump_json(held)) == held
    assert WIRE_TIME.dump_json(held) == WIRE_TIME.dump_json(value)


def test_the_jersey_fold_found_by_hypothesis_is_refused() -> None:
    end = JERSEY_FOLD + timedelta(microseconds=1)  # fold=0: an hour *before* JERSEY_FOLD
    with pytest.raises(ValidationError, match="must be after start"):
        EventCreated(**fields(JERSEY_FOLD, end))


def test_a_fold_is_an_hour_of_real_time() -> None:
    first, second = JERSEY_FOLD.replace(fold=0), JERSEY_FOLD
    event = EventCreated(**fields(first, second))
    assert event.duration_minutes == 60
    assert event.start.utcoffset() == timedelta(hours=2)
    assert event.end.utcoffset() == timedelta(hours=1)
    assert b'"start":"1943-10-04T02:00:00+02:00","end":"1943-10-04T02:00:00+01:00"' in (
        event.to_bytes()
    )


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        pytest.param(
            datetime(2025, 3, 29, 9, 0, tzinfo=BERLIN),
            datetime(2025, 3, 30, 9, 0, tzinfo=BERLIN),
            23 * 60,
            id="spring-forward-day",
        ),
        pytest.param(
            BERLIN_GAP.replace(fold=1), BERLIN_GAP.replace(hour=3, minute=0), 30, id="in-the-gap"
        ),
    ],
)
def test_durations_are_real_time(start: datetime, end: datetime, minutes: int) -> None:
    assert EventCreated(**fields(start, end)).duration_minutes == minutes


def test_a_24_hour_wall_day_of_25_real_hours_is_too_long() -> None:
    start = datetime(2025, 10, 25, 9, 0, tzinfo=BERLIN)
    with pytest.raises(ValidationError, match="must be at most 24 hours after start"):
        EventCreated(**fields(start, start + timedelta(hours=24)))


def test_times_out_of_the_calendar_in_utc_are_refused_not_raised() -> None:
    # LMT offsets have seconds, so such a time goes to UTC, which year 1 cannot reach.
    early = datetime(1, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam"))
    with pytest.raises(ValidationError, match="must fall within years 0001-9999 once moved to UTC"):
        WIRE_TIME.validate_python(early)
    # A whole-minute offset is kept as it is, but its instant must be in the calendar too.
    late = datetime(9999, 12, 31, 22, tzinfo=timezone(timedelta(hours=-14)))
    with pytest.raises(ValidationError, match="must fall within years 0001-9999 once moved to UTC"):
        WIRE_TIME.validate_python(late)
    last = late - timedelta(hours=13)  # 9999-12-31T23:00:00Z
    assert WIRE_TIME.validate_python(last) == last
