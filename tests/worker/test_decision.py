"""The pure core: what each message does, given the stored link."""

from __future__ import annotations

import json

import pytest

from schemas import parse_event
from tests.worker.harness import event
from worker.pipeline.decision import (
    Cancel,
    Create,
    Remember,
    Republish,
    Update,
    decide,
    wanted_meeting,
)
from worker.pipeline.links import Link


def parsed(kind: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_event(kind, json.dumps(body).encode())  # type: ignore[arg-type]


def linked(revision: int, **changes: object) -> Link:
    wanted = wanted_meeting(parsed("created", event("e1", revision)))
    return Link(
        "e1", "ana", "linked", revision, zoom_meeting_id=42, join_url="https://zoom/j/42",
        title=wanted.topic, start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes, timezone=wanted.timezone,
        agenda_digest=wanted.agenda_digest, last_message_id="m", last_result=b"{}",
        last_result_topic="meeting.linked",
    ).evolve(**changes)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "body", "link", "expected"),
    [
        ("created", event("e1", 1), None, Create),
        ("updated", event("e1", 2), None, Create),
        ("updated", event("e1", 2, title="New"), linked(1), Update),
        ("updated", event("e1", 2, video="none"), linked(1), Cancel),
        ("deleted", event("e1", 2, deleted=True), linked(1), Cancel),
        ("created", event("e1", 1), linked(1), Republish),
        ("created", event("e1", 1), linked(3), Republish),
        ("deleted", event("e1", 2, deleted=True), None, Remember),
        ("created", event("e1", 1, video="teams"), None, Remember),
        ("created", event("e1", 2), linked(1, state="creating", last_result=None), Create),
        ("deleted", event("e1", 2, deleted=True), linked(1, state="creating"), Cancel),
    ],
    ids=[
        "create", "update-before-create-creates", "update-patches", "switch-away-cancels",
        "delete-cancels", "exact-redelivery-republishes", "older-is-stale",
        "delete-without-meeting-is-recorded", "other-provider-is-not-ours",
        "crashed-create-is-recovered", "delete-during-crashed-create-looks-for-it",
    ],
)  # fmt: skip
def test_decide(kind: str, body: dict[str, object], link: Link | None, expected: type) -> None:
    assert isinstance(decide(parsed(kind, body), link), expected)


def test_an_update_patches_only_what_changed() -> None:
    decision = decide(parsed("updated", event("e1", 2, title="New")), linked(1))
    assert isinstance(decision, Update) and decision.changed == frozenset({"topic"})


def test_a_recovering_create_is_marked() -> None:
    decision = decide(parsed("created", event("e1", 1)), linked(0, state="creating"))
    assert isinstance(decision, Create) and decision.recover


def test_a_stale_message_without_a_result_changes_nothing() -> None:
    tomb = Link("e1", "ana", "deleted", 5)
    decision = decide(parsed("created", event("e1", 1)), tomb)
    assert isinstance(decision, Remember) and decision.link == tomb
