"""The pure core: what each message does, given the stored link."""

from __future__ import annotations

import json

import pytest

from schemas import parse_event
from tests.worker.harness import event
from worker.pipeline.decision import (
    Cancel,
    Create,
    Handover,
    HostedMeeting,
    Remember,
    Republish,
    UnfinishedCreate,
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


# A link belongs to its host: the user whose token made the meeting, the only one to touch it.


def handing_over(revision: int, **changes: object) -> Link:
    """Bruno's create stored as intent, Ana's meeting 42 still to cancel (a handover under way)."""
    return linked(
        revision - 1, state="creating", host_user_id="bruno", zoom_meeting_id=None,
        replaced_meeting_id=42, replaced_host_user_id="ana", last_result=None,
    ).evolve(**changes)  # fmt: skip


def test_another_organizer_takes_the_meeting_over_from_its_host() -> None:
    source = parsed("updated", event("e1", 2, organizer="bruno"))
    assert decide(source, linked(1, host_user_id="ana")) == Handover(
        wanted_meeting(source), old=HostedMeeting(42, "ana"), abandoned=None, recover=False
    )


def test_the_same_organizer_updates_with_the_stored_host() -> None:
    decision = decide(parsed("updated", event("e1", 2, title="New")), linked(1, host_user_id="ana"))
    assert isinstance(decision, Update) and decision.meeting == HostedMeeting(42, "ana")


def test_a_link_without_a_stored_host_is_the_current_organizers() -> None:
    """Links stored before migration 0004 have no host: read as the message's organizer."""
    decision = decide(parsed("updated", event("e1", 2, organizer="bruno")), linked(1))
    assert isinstance(decision, Update) and decision.meeting == HostedMeeting(42, "bruno")


def test_a_crashed_handover_resumes_recovering_the_new_hosts_create() -> None:
    source = parsed("updated", event("e1", 2, organizer="bruno"))
    assert decide(source, handing_over(2)) == Handover(
        wanted_meeting(source), old=HostedMeeting(42, "ana"), abandoned=None, recover=True
    )


def test_a_third_organizer_mid_handover_drops_the_unfinished_create_with_its_hosts_token() -> None:
    source = parsed("updated", event("e1", 3, organizer="carla"))
    assert decide(source, handing_over(3)) == Handover(
        wanted_meeting(source),
        old=HostedMeeting(42, "ana"),
        abandoned=UnfinishedCreate("bruno"),
        recover=False,
    )


def test_another_organizer_after_a_crashed_create_is_a_handover_of_the_unfinished_create() -> None:
    crashed = linked(1, state="creating", host_user_id="bruno", last_result=None)
    source = parsed("updated", event("e1", 2, organizer="carla"))
    assert decide(source, crashed) == Handover(
        wanted_meeting(source), old=None, abandoned=UnfinishedCreate("bruno"), recover=False
    )
    own = decide(parsed("updated", event("e1", 2, organizer="bruno")), crashed)
    assert own == Create(wanted_meeting(parsed("updated", event("e1", 2))), recover=True)


def test_a_replaced_meeting_left_by_a_failed_handover_is_handed_over_again() -> None:
    failed = handing_over(2, state="none", creating_since=None)
    source = parsed("updated", event("e1", 3, organizer="bruno"))
    assert decide(source, failed) == Handover(
        wanted_meeting(source), old=HostedMeeting(42, "ana"), abandoned=None, recover=False
    )


@pytest.mark.parametrize("deleted", [True, False], ids=["deleted", "switched-away"])
def test_a_cancel_names_each_meeting_with_its_own_host(deleted: bool) -> None:
    body = event("e1", 2, organizer="bruno", deleted=deleted, video="none")
    source = parsed("deleted" if deleted else "updated", body)
    assert decide(source, linked(1, host_user_id="ana")) == Cancel(
        (HostedMeeting(42, "ana"),), deleted=deleted
    )


def test_a_delete_mid_handover_cancels_the_old_meeting_and_the_unfinished_create() -> None:
    source = parsed("deleted", event("e1", 3, organizer="bruno", deleted=True))
    assert decide(source, handing_over(3)) == Cancel(
        (HostedMeeting(42, "ana"), UnfinishedCreate("bruno")), deleted=True
    )


def test_a_stale_message_of_another_organizer_is_no_handover() -> None:
    source = parsed("updated", event("e1", 1, organizer="bruno"))
    assert isinstance(decide(source, linked(2, host_user_id="ana")), Republish)
