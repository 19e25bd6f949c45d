"""No id, email, title, zone or provider name holds a C0 control or DEL; free text keeps layout.

U+0000 cannot be stored in Postgres text, and a control character in a key, a log line or a
header breaks whoever reads it next. The models and the JSON Schema files refuse the same
characters in the same fields; the refusal names the field, never the value.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import ContractError, MeetingFailed, parse_event, parse_failed, parse_linked
from schemas.fields import CONTROLS, TEXT_CONTROLS
from tests.schemas import strategies as s
from tests.schemas.contract_files import TOPICS, load, schema_errors
from tests.schemas.test_event_rules import created

Path = tuple[str | int, ...]

SINGLE_LINE: list[Path] = [
    ("message_id",),
    ("event_id",),
    ("organizer", "user_id"),
    ("organizer", "email"),
    ("title",),
    ("timezone",),
    ("video_conference",),
    ("attendees", 0, "email"),
]
FREE_TEXT: list[Path] = [("description",), ("attendees", 0, "name")]
COMMON: list[Path] = SINGLE_LINE[:4]  # what event.deleted carries

# Every control at the end (where Python's "$" would let a newline through), U+0000 anywhere.
PLACED = [(c, "end") for c in s.CONTROL_CHARACTERS] + [("\x00", "start"), ("\x00", "middle")]


def dotted(path: Path) -> str:
    return ".".join(map(str, path))


def poisoned(message: dict[str, Any], path: Path, control: str, where: str) -> dict[str, Any]:
    message = copy.deepcopy(message)
    parent = message
    for part in path[:-1]:
        parent = parent[part]
    value: str = parent[path[-1]]
    at = {"start": 0, "middle": len(value) // 2, "end": len(value)}[where]
    parent[path[-1]] = value[:at] + control + value[at:]
    return message


def upsert() -> dict[str, Any]:
    return created(description="Agenda", attendees=[{"email": "sam@example.org", "name": "Sam"}])


def rejection(kind: str, message: dict[str, Any]) -> ContractError:
    with pytest.raises(ContractError) as caught:
        parse_event(kind, json.dumps(message).encode())  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("path", SINGLE_LINE, ids=dotted)
@pytest.mark.parametrize(("control", "where"), PLACED, ids=lambda v: f"{v!a}")
def test_ids_and_titles_refuse_every_control_character(
    path: Path, control: str, where: str
) -> None:
    message = poisoned(upsert(), path, control, where)
    error = rejection("created", message)
    assert error.field == dotted(path)
    expected = (
        "not an email address" if path[-1] == "email" else "must not contain control characters"
    )
    assert error.why == expected
    assert control not in str(error)
    assert schema_errors("event.created", message) != []
    assert schema_errors("event.updated", message) != []


@pytest.mark.parametrize("path", COMMON, ids=dotted)
def test_a_deletion_refuses_them_too(path: Path) -> None:
    message = poisoned(upsert(), path, "\x00", "middle")
    assert rejection("deleted", message).field == dotted(path)
    assert schema_errors("event.deleted", message) != []


@pytest.mark.parametrize("path", FREE_TEXT, ids=dotted)
@pytest.mark.parametrize("control", s.CONTROL_CHARACTERS, ids=lambda c: f"{ord(c):02x}")
def test_free_text_keeps_tab_and_line_breaks_only(path: Path, control: str) -> None:
    message = poisoned(upsert(), path, control, "middle")
    wire = json.dumps(message).encode()
    if control in s.LAYOUT_CHARACTERS:
        parse_event("created", wire)
        assert schema_errors("event.created", message) == []
    else:
        error = rejection("created", message)
        assert (error.field, error.why) == (
            dotted(path),
            "must not contain control characters other than tab, line feed and carriage return",
        )
        assert schema_errors("event.created", message) != []


# Emails and zones have rules of their own about these.
PLAIN = [p for p in (*SINGLE_LINE, *FREE_TEXT) if p[-1] != "email" and p != ("timezone",)]


@pytest.mark.parametrize("path", PLAIN, ids=dotted)
@pytest.mark.parametrize("char", ["\x80", "\x85", "\x9f", "\u2028", "\ufeff"], ids=ascii)
def test_other_characters_are_not_control_characters_here(path: Path, char: str) -> None:
    # C1 controls and Unicode separators are left alone: the rule is C0 and DEL, no more.
    message = poisoned(upsert(), path, char, "middle")
    parse_event("created", json.dumps(message, ensure_ascii=False).encode())
    assert schema_errors("event.created", message) == []


def test_the_schemas_state_the_models_character_classes() -> None:
    line = {"type": "string", "pattern": CONTROLS}
    text = {"type": "string", "pattern": TEXT_CONTROLS}
    for topic in ("event.created", "event.updated"):
        schema = load(topic)
        props, defs = schema["properties"], schema["$defs"]
        for name in ("message_id", "event_id", "title", "timezone", "video_conference"):
            assert props[name]["not"] == line, (topic, name)
        assert props["description"]["not"] == text
        assert defs["organizer"]["properties"]["user_id"]["not"] == line
        assert defs["organizer"]["properties"]["email"]["not"] == line
        assert defs["attendee"]["properties"]["email"]["not"] == line
        assert defs["attendee"]["properties"]["name"]["not"] == text
    for topic in ("meeting.linked", "meeting.failed"):
        props = load(topic)["properties"]
        for name in ("message_id", "correlation_id", "event_id", "organizer_user_id"):
            assert props[name]["not"] == line, (topic, name)


def every_string(value: Any, path: Path = ()) -> list[Path]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in every_string(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in every_string(v, (*path, i))]
    return []


EXAMPLE_STRINGS = [
    pytest.param(topic, example, path, id=f"{topic}-{i}-{dotted(path)}")
    for topic in TOPICS
    if topic.startswith("event.")
    for i, example in enumerate(load(topic)["examples"])
    for path in every_string(example)
]


@pytest.mark.parametrize(("topic", "example", "path"), EXAMPLE_STRINGS)
def test_u0000_is_refused_in_every_string_of_an_event(
    topic: str, example: dict[str, Any], path: Path
) -> None:
    # Whatever a future field is, Postgres cannot store U+0000: model and schema both refuse it.
    message = poisoned(example, path, "\x00", "middle")
    assert rejection(topic.removeprefix("event."), message).field == dotted(path)
    assert schema_errors(topic, message) != []


@pytest.mark.parametrize("name", ["message_id", "correlation_id", "event_id", "organizer_user_id"])
def test_results_refuse_them_as_well(name: str) -> None:
    linked, failed = load("meeting.linked")["examples"][0], load("meeting.failed")["examples"][0]
    for topic, parse, example in (
        ("meeting.linked", parse_linked, linked),
        ("meeting.failed", parse_failed, failed),
    ):
        message = poisoned(example, (name,), "\x00", "end")
        with pytest.raises(ContractError) as caught:
            parse(json.dumps(message).encode())
        assert caught.value.field == name
        assert schema_errors(topic, message) != []
    with pytest.raises(ValidationError, match="must not contain control characters"):
        MeetingFailed(**{**failed, name: "evt\x00"})
