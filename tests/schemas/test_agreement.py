"""The models and the JSON Schema files describe one contract and must never drift apart."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    ContractError,
    EventCreated,
    EventDeleted,
    EventUpdated,
    MeetingFailed,
    MeetingLinked,
    parse_event,
    parse_failed,
    parse_linked,
)
from schemas.events import SourceEvent
from tests.schemas import strategies as s
from tests.schemas.contract_files import TOPICS, load, schema_errors
from tests.schemas.mutations import mutated

HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXAMPLES = [
    pytest.param(topic, i, example, id=f"{topic}-{i}")
    for topic in TOPICS
    for i, example in enumerate(load(topic)["examples"])
]


def parse(topic: str, data: bytes) -> SourceEvent | MeetingLinked | MeetingFailed:
    if topic == "meeting.linked":
        return parse_linked(data)
    if topic == "meeting.failed":
        return parse_failed(data)
    return parse_event(topic.removeprefix("event."), data)  # type: ignore[arg-type]


@pytest.mark.parametrize("topic", TOPICS)
def test_each_schema_has_examples(topic: str) -> None:
    assert len(load(topic)["examples"]) >= 1


@pytest.mark.parametrize(("topic", "index", "example"), EXAMPLES)
def test_every_schema_example_is_valid_by_schema_and_model(
    topic: str, index: int, example: dict[str, Any]
) -> None:
    assert schema_errors(topic, example) == []
    model = parse(topic, json.dumps(example).encode())
    assert model.message_id == example["message_id"]


@pytest.mark.parametrize(("topic", "index", "example"), EXAMPLES)
def test_example_round_trips_through_the_model(
    topic: str, index: int, example: dict[str, Any]
) -> None:
    model = parse(topic, json.dumps(example).encode())
    again = parse(topic, model.to_bytes())
    assert again == model
    assert schema_errors(topic, json.loads(model.to_bytes())) == []


MODELS = {
    "event.created": (EventCreated, s.events_created),
    "event.updated": (EventUpdated, s.events_updated),
    "event.deleted": (EventDeleted, s.events_deleted),
    "meeting.linked": (MeetingLinked, s.meetings_linked()),
    "meeting.failed": (MeetingFailed, s.meetings_failed),
}


@pytest.mark.parametrize("topic", TOPICS)
@HYPOTHESIS
@given(data=st.data())
def test_every_model_instance_validates_against_its_schema(topic: str, data: st.DataObject) -> None:
    model_type, strategy = MODELS[topic]
    model = data.draw(strategy)
    assert isinstance(model, model_type)
    wire = model.to_bytes()
    assert schema_errors(topic, json.loads(wire)) == []
    # Read back, it is the same message, byte for byte (test_instants: across DST too).
    assert parse(topic, wire).to_bytes() == wire


# Rules JSON Schema cannot state: comparing two fields, the tz database, and 1.0 versus 1
# (the same number to JSON Schema, not an integer to the worker).
MODEL_ONLY_FIELDS = {"end", "timezone"}
MODEL_ONLY_WHY = {"must be an integer", "must fall within years 0001-9999 once moved to UTC"}


@pytest.mark.parametrize("topic", ["event.created", "event.updated", "event.deleted"])
@HYPOTHESIS
@given(data=st.data())
def test_model_and_schema_agree_on_near_valid_messages(topic: str, data: st.DataObject) -> None:
    message = data.draw(mutated(topic))
    wire = json.dumps(message, ensure_ascii=False).encode()
    by_schema = schema_errors(topic, message)
    try:
        parse(topic, wire)
    except ContractError as exc:
        if not by_schema:
            assert exc.field in MODEL_ONLY_FIELDS or exc.why in MODEL_ONLY_WHY, str(exc)
    else:
        # The worker must never accept a message its published schema calls invalid.
        assert by_schema == []
