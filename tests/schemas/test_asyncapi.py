"""The AsyncAPI document describes the same topics, payload files and headers as the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from schemas import dead_letter, headers
from tests.schemas.contract_files import SCHEMA_DIR, TOPICS, load

DOCUMENT: dict[str, Any] = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = DOCUMENT
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_it_is_asyncapi_3() -> None:
    assert DOCUMENT["asyncapi"] == "3.0.0"
    assert DOCUMENT["defaultContentType"] == "application/json"


def test_it_describes_the_five_topics_and_the_dead_letter_topic() -> None:
    addresses = {channel["address"] for channel in DOCUMENT["channels"].values()}
    # meeting.changed, published by serve: tests/schemas/test_meeting_changed.py
    assert addresses == {*TOPICS, "meeting.changed", "zoom-worker.dlq"}


def test_the_worker_receives_events_and_sends_the_rest() -> None:
    actions = {
        resolve(op["channel"]["$ref"])["address"]: op["action"]
        for op in DOCUMENT["operations"].values()
    }
    assert actions == {
        "event.created": "receive",
        "event.updated": "receive",
        "event.deleted": "receive",
        "meeting.linked": "send",
        "meeting.failed": "send",
        "meeting.changed": "send",
        "zoom-worker.dlq": "send",
    }


@pytest.mark.parametrize("topic", TOPICS)
def test_each_topic_payload_is_its_v1_schema_file_keyed_by_event_id(topic: str) -> None:
    (channel,) = [c for c in DOCUMENT["channels"].values() if c["address"] == topic]
    (message_ref,) = channel["messages"].values()
    message = resolve(message_ref["$ref"])
    assert message["name"] == topic
    payload = message["payload"]
    assert payload["schemaFormat"] == "application/schema+json;version=2020-12"
    target = (SCHEMA_DIR / payload["schema"]["$ref"]).resolve()
    assert target == (SCHEMA_DIR / "v1" / f"{topic}.json").resolve()
    assert Path(target).is_file()
    key = resolve(message["bindings"]["kafka"]["key"]["$ref"])
    assert "event_id" in key["description"]
    assert set(resolve(message["headers"]["$ref"])["properties"]) == {
        headers.MESSAGE_TYPE,
        headers.SCHEMA_VERSION,
        headers.CONTENT_TYPE,
    }


def test_the_record_key_follows_the_rules_of_event_id() -> None:
    key = DOCUMENT["components"]["schemas"]["eventIdKey"]
    for topic in TOPICS:
        event_id = load(topic)["properties"]["event_id"]
        for rule in ("minLength", "maxLength", "not"):
            assert key[rule] == event_id[rule], (topic, rule)
    valid = Draft202012Validator(key)
    assert valid.is_valid("evt_5521")
    for bad in ("", "e" * 129, "evt\x00", "evt\n", "\x7f"):
        assert not valid.is_valid(bad), bad


def test_dead_letter_headers_match_the_code() -> None:
    schema = DOCUMENT["components"]["schemas"]["deadLetterHeaders"]
    assert schema["required"] == list(dead_letter.DLQ_HEADERS)
    assert schema["properties"]["x-dlq-error"]["maxLength"] == dead_letter.DETAIL_MAX_BYTES


@pytest.mark.parametrize("name", sorted(DOCUMENT["components"]["schemas"]))
def test_inline_schemas_are_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(DOCUMENT["components"]["schemas"][name])
