"""Near-valid messages: valid ones with fields removed, retyped, past a limit or with a control."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from tests.schemas import strategies as s

Path = tuple[str | int, ...]

EDGE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 1.0, 1.5, 2**63 - 1, 2**63, 2**64, -(2**63),
    "", " ", "x" * 128, "x" * 129, "x" * 200, "x" * 201, "x" * 256, "x" * 257, "x" * 2001,
    "zoom", "none", "UTC", "Europe/Berlin", "Mars/Olympus_Mons", "utc", "localtime",
    "a@b", "a@", "@b", "a b@c", "a@b@c", "a\x1c@b", "a\u00a0@b", "a\u2028@b", "é@ü",
    "2025-03-10T14:00:00Z", "2025-03-10T14:00:00+01:00", "2025-03-10t14:00:00z",
    "2025-03-10T14:00:00", "2025-03-10 14:00:00Z", "2025-03-10", "2025-03-10T14:00Z",
    "2025-02-30T14:00:00Z", "2025-03-10T24:00:00Z", "2025-03-10T14:00:00+24:00",
    "2025-03-10T23:59:60Z", "2025-03-10T14:00:00.123456789-00:00", "1741615200",
    1741615200, "\uff12\uff10\uff12\uff15-03-10T14:00:00Z", [], {}, [1], {"email": "a@b"},
    "\x00", "evt\x00", "\x00evt", "evt\n", "\nevt", "a\tb", "a\r\nb", "\x1f", "x\x7f", "\x0b",
    "a@b\n", "a@b\x00", "Europe/Berlin\n", "zoom\x00", "\x85", "a\x9fb",
    "2025-03-10T14:00:00Z\n", "2025-03-10T14:00:00Z\x00",
    "9999-12-31T22:00:00-14:00", "0001-01-01T00:30:00+14:00",  # past the calendar in UTC
]  # fmt: skip


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    found: list[Path] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value[:3]):
            found += _paths(inner, (*prefix, i))
    return found


def _parent(doc: Any, path: Path) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def _mutate(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    path = draw(st.sampled_from(_paths(doc)))
    parent, last = _parent(doc, path), path[-1]
    how = draw(st.sampled_from(["delete", "edge", "any", "extra", "nudge", "grow", "control"]))
    if how == "delete":
        del parent[last]
    elif how == "edge":
        parent[last] = draw(st.sampled_from(EDGE_VALUES))
    elif how == "any":
        parent[last] = draw(s.json_values)
    elif how == "extra" and isinstance(parent, dict):
        parent[draw(s.texts(0, 12))] = draw(s.json_values)
    elif how == "nudge" and isinstance(parent[last], int) and not isinstance(parent[last], bool):
        parent[last] += draw(st.sampled_from([-1, 1, 2**63]))
    elif how == "grow" and isinstance(parent[last], str | list):
        parent[last] = parent[last] * draw(st.integers(2, 400))
    elif how == "control" and isinstance(parent[last], str):
        # Any C0 control or DEL, tab and line breaks included (free text may hold those).
        parent[last] = draw(s.with_control(parent[last]))
    return doc


def valid_message(topic: str) -> st.SearchStrategy[dict[str, Any]]:
    strategy = {
        "event.created": s.events_created,
        "event.updated": s.events_updated,
        "event.deleted": s.events_deleted,
    }[topic]
    return strategy.map(lambda model: json.loads(model.to_bytes()))


@st.composite
def mutated(draw: st.DrawFn, topic: str) -> dict[str, Any]:
    doc = draw(valid_message(topic))
    for _ in range(draw(st.integers(1, 3))):
        doc = draw(_mutate(doc))
    return doc
