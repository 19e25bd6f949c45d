"""Whatever bytes arrive, parsing gives a model or a ContractError, never anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas import ContractError, EventKind, parse_event, parse_failed, parse_linked, salvage_ids
from tests.schemas import strategies as s
from tests.schemas.mutations import mutated

HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS: list[EventKind] = ["created", "updated", "deleted"]


def outcome(kind: EventKind, data: bytes) -> str:
    try:
        parse_event(kind, data)
    except ContractError as exc:
        assert exc.why
        assert str(exc).startswith(f"{exc.field}: " if exc.field else exc.why)
        return "rejected"
    return "accepted"


@pytest.mark.parametrize("kind", KINDS)
@HYPOTHESIS
@given(data=st.binary(max_size=300))
@example(data=b"")
@example(data=b"\xff\xfe{}")
@example(data=b'{"title": "\xed\xa0\x80"}')  # an encoded surrogate: not UTF-8
@example(data=b"[" * 100_000)
@example(data=b'{"a":' * 5000)
@example(data=b"1e999999")
@example(data=b'"\\ud800"')
def test_arbitrary_bytes(kind: EventKind, data: bytes) -> None:
    assert outcome(kind, data) in ("accepted", "rejected")
    salvage_ids(data)  # never raises either


@pytest.mark.parametrize("kind", KINDS)
@HYPOTHESIS
@given(value=s.json_values)
def test_arbitrary_json(kind: EventKind, value: object) -> None:
    assert outcome(kind, json.dumps(value).encode()) == "rejected"


@pytest.mark.parametrize("kind", KINDS)
@HYPOTHESIS
@given(data=st.data())
def test_near_valid_mutations(kind: EventKind, data: st.DataObject) -> None:
    message = data.draw(mutated(f"event.{kind}"))
    wire = json.dumps(message, ensure_ascii=False).encode()
    assert outcome(kind, wire) in ("accepted", "rejected")
    ids = salvage_ids(wire)
    event_id = message.get("event_id")
    # U+FFFD marks text damaged in decoding, and a control character an id no result may carry:
    # salvage refuses such an id on purpose.
    if (
        isinstance(event_id, str)
        and 0 < len(event_id) <= 128
        and "\ufffd" not in event_id
        and not any(c in s.CONTROL_CHARACTERS for c in event_id)
    ):
        assert ids.event_id == event_id
    else:
        assert ids.event_id is None


@HYPOTHESIS
@given(data=st.binary(max_size=200) | s.json_values.map(lambda v: json.dumps(v).encode()))
def test_output_parsers_raise_only_contract_error(data: bytes) -> None:
    for parser in (parse_linked, parse_failed):
        with pytest.raises(ContractError):
            parser(data)
