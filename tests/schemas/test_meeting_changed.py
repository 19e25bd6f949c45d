"""meeting.changed (published by ``zoom-worker serve``): its JSON Schema, its model and its
AsyncAPI entry describe one contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import ChangedMeeting, ContractError, MeetingChange, MeetingChanged, parse_changed
from schemas.changes import CHANGED_FIELDS
from schemas.fields import INT64_MAX
from tests.schemas import strategies as s
from tests.schemas.contract_files import SCHEMA_DIR, load, schema_errors
from tests.schemas.test_asyncapi import DOCUMENT, resolve

TOPIC = "meeting.changed"
EXAMPLES = [pytest.param(e, id=e["change"]) for e in load(TOPIC)["examples"]]


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_is_valid_by_schema_and_model_and_round_trips(
    example: dict[str, Any],
) -> None:
    assert schema_errors(TOPIC, example) == []
    model = parse_changed(json.dumps(example).encode())
    assert model.message_id == example["message_id"]
    assert parse_changed(model.to_bytes()) == model
    assert schema_errors(TOPIC, json.loads(model.to_bytes())) == []


def test_the_examples_show_every_change() -> None:
    assert {e["change"] for e in load(TOPIC)["examples"]} == {c.value for c in MeetingChange}


@st.composite
def changes(draw: st.DrawFn) -> MeetingChanged:
    change = draw(st.sampled_from(MeetingChange))
    meeting = ChangedMeeting(id=draw(st.integers(1, INT64_MAX)))
    changed = None
    if change is MeetingChange.UPDATED_ON_ZOOM:
        meeting = ChangedMeeting(
            id=meeting.id,
            topic=draw(s.line_texts(0, 200)),
            start_time=draw(s.times),
            duration=draw(st.integers(0, 10_000)),
            timezone=draw(st.none() | s.line_texts(1, 64)),
        )
        changed = tuple(draw(st.lists(st.sampled_from(CHANGED_FIELDS), min_size=1, unique=True)))
    return MeetingChanged(
        message_id=draw(s.ids),
        event_id=draw(s.event_ids),
        revision=draw(s.revisions),
        organizer_user_id=draw(s.ids),
        change=change,
        meeting=meeting,
        changed=changed,
        occurred_at=draw(s.times),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=changes())
def test_every_model_instance_validates_against_the_schema(message: MeetingChanged) -> None:
    wire = message.to_bytes()
    assert schema_errors(TOPIC, json.loads(wire)) == []
    assert parse_changed(wire).to_bytes() == wire


@pytest.mark.parametrize(
    ("case", "edit"),
    [
        ("update_without_changed", lambda m: m.pop("changed")),
        ("update_without_start", lambda m: m["meeting"].pop("start_time")),
        ("changed_on_a_delete", lambda m: m.update(change="deleted_on_zoom")),
        ("unknown_change", lambda m: m.update(change="renamed")),
        ("unknown_changed_field", lambda m: m.update(changed=["agenda"])),
        ("changed_twice", lambda m: m.update(changed=["topic", "topic"])),
        ("control_in_topic", lambda m: m["meeting"].update(topic="a\nb")),
        ("no_offset", lambda m: m.update(occurred_at="2025-03-06T10:12:41")),
        ("start_url", lambda m: m["meeting"].update(start_url="https://zoom.us/s/1")),
    ],
)
def test_schema_and_model_refuse_the_same_mistakes(case: str, edit: Any) -> None:
    message = json.loads(json.dumps(load(TOPIC)["examples"][0]))
    edit(message)
    assert schema_errors(TOPIC, message) != [], case
    if case == "start_url":  # the model drops unknown fields; the schema forbids this one
        assert "start_url" not in parse_changed(json.dumps(message).encode()).to_bytes().decode()
        return
    with pytest.raises(ContractError):
        parse_changed(json.dumps(message).encode())


def test_asyncapi_names_the_channel_its_schema_file_and_the_event_id_key() -> None:
    (channel,) = [c for c in DOCUMENT["channels"].values() if c["address"] == TOPIC]
    (message_ref,) = channel["messages"].values()
    message = resolve(message_ref["$ref"])
    assert message["name"] == TOPIC
    target = (SCHEMA_DIR / message["payload"]["schema"]["$ref"]).resolve()
    assert target == (SCHEMA_DIR / "v1" / f"{TOPIC}.json").resolve() and Path(target).is_file()
    key = resolve(message["bindings"]["kafka"]["key"]["$ref"])
    assert "event_id" in key["description"]
    for rule in ("minLength", "maxLength", "not"):
        assert key[rule] == load(TOPIC)["properties"]["event_id"][rule]
    sends = [
        op
        for op in DOCUMENT["operations"].values()
        if resolve(op["channel"]["$ref"])["address"] == TOPIC
    ]
    assert [op["action"] for op in sends] == ["send"]
