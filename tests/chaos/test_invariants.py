"""The shared invariants catch what they promise to catch (fast: part of the normal suite).

Each test builds a small true story (a plan, the results a correct worker publishes, the Zoom
meetings it leaves) on a real emulator, breaks one thing, and expects exactly that violation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from devservices.zoom_emulator import ZoomEmulator

from tests.chaos.invariants import Settled, evaluate
from tests.chaos.plan import Plan, Source
from tests.chaos.workload import BASE, event_body
from tests.worker.harness import Results, Topics
from worker.pipeline.results import result_message_id


@pytest.fixture(scope="module")
def emulator() -> Iterator[ZoomEmulator]:
    with ZoomEmulator() as zoom:
        yield zoom


class Story:
    """A plan, the results a correct worker would publish, and Zoom as it would leave it."""

    def __init__(self, zoom: ZoomEmulator) -> None:
        self.zoom = zoom
        self.user = zoom.add_user("ana@zoom.test").id
        self.token, _ = zoom.grant_tokens(self.user)
        self.plan = Plan()
        self.results = Results("unused:9092", Topics("t"))

    def meeting(self, source: Source) -> int:
        fields = source.meeting_fields()
        answer = httpx.post(
            f"{self.zoom.api_base_url}/users/me/meetings",
            headers={"Authorization": f"Bearer {self.token}"},
            json={
                "topic": fields["topic"],
                "agenda": fields["agenda"],
                "type": 2,
                "start_time": fields["start_time"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "duration": fields["duration"],
                "timezone": fields["timezone"],
            },
        )
        answer.raise_for_status()
        return int(answer.json()["id"])

    def publish(self, source: Source, meeting_id: int, action: str = "created") -> None:
        value: dict[str, Any] = {
            "message_id": result_message_id(source.message_id),
            "correlation_id": source.message_id,
            "event_id": source.event_id,
            "revision": source.revision,
            "action": action,
            "meeting": {"id": meeting_id},
        }
        self.results.seen.append((self.results.topics.linked, value, {}))

    def linked(self, event_id: str, title: str) -> tuple[Source, int]:
        body = event_body(event_id, 1, "ana", title=title, start=BASE)
        source = self.plan.add("created", body)
        meeting_id = self.meeting(source)
        self.publish(source, meeting_id)
        return source, meeting_id

    def kinds(self) -> list[str]:
        summary = evaluate(
            plan=self.plan,
            results=self.results,
            zoom=self.zoom,
            zoom_users={"ana": self.user},
        )
        return sorted({v.kind for v in summary.violations})


@pytest.fixture
def story(emulator: ZoomEmulator) -> Story:
    return Story(emulator)


def test_a_correct_story_has_no_violation(story: Story) -> None:
    story.linked("ev-1", "one")
    source, meeting_id = story.linked("ev-2", "two")
    story.plan.again(source)  # redelivered
    story.publish(source, meeting_id)  # and answered again, under the same id
    assert story.kinds() == []


def test_an_unanswered_message(story: Story) -> None:
    story.linked("ev-1", "one")
    story.plan.add("created", event_body("ev-2", 1, "ana", title="two", start=BASE))
    assert "unanswered" in story.kinds()


def test_a_second_meeting_for_one_event(story: Story) -> None:
    source, _ = story.linked("ev-1", "one")
    story.meeting(source)
    assert story.kinds() == ["meeting_left_on_zoom"]


def test_a_meeting_that_is_not_what_the_calendar_says(story: Story) -> None:
    _, meeting_id = story.linked("ev-1", "one")
    newer = event_body("ev-1", 2, "ana", title="moved", start=BASE)
    story.publish(story.plan.add("updated", newer), meeting_id, "updated")
    assert story.kinds() == ["meeting_differs"]


def test_two_events_on_one_meeting(story: Story) -> None:
    _, meeting_id = story.linked("ev-1", "same")
    twin = story.plan.add("created", event_body("ev-2", 1, "ana", title="same", start=BASE))
    story.publish(twin, meeting_id)
    assert story.kinds() == ["meeting_shared_by_events"]


def test_a_result_under_another_id(story: Story) -> None:
    story.linked("ev-1", "one")
    _, value, _ = story.results.seen[0]
    assert value is not None
    story.results.seen.append((story.results.topics.linked, value | {"message_id": "x"}, {}))
    assert story.kinds() == ["result_id_not_the_sources"]


def test_a_deleted_event_whose_meeting_is_left(story: Story) -> None:
    story.linked("ev-1", "one")
    story.plan.add("deleted", event_body("ev-1", 2, "ana", title="", start=BASE, deleted=True))
    assert story.kinds() == ["meeting_left_on_zoom"]


def test_a_dead_letter_and_a_failure(story: Story) -> None:
    source, _ = story.linked("ev-1", "one")
    story.results.seen.append(
        (story.results.topics.dlq, None, {"__value__": source.value, "x-dlq-reason": b"boom"})
    )
    failed = {
        "message_id": result_message_id(source.message_id),
        "correlation_id": source.message_id,
        "event_id": source.event_id,
        "revision": 1,
        "reason": "zoom_unavailable",
    }
    story.results.seen.append((story.results.topics.failed, failed, {}))
    assert story.kinds() == ["dead_lettered", "failed"]


def test_poison_must_be_answered_or_parked(story: Story) -> None:
    body = event_body("ev-p", 1, "ana", title="x", start=BASE)
    poison = story.plan.add("created", body, poison=True, value=json.dumps(body).encode())
    assert story.kinds() == ["poison_neither_answered_nor_parked"]
    story.results.seen.append(
        (story.results.topics.dlq, None, {"__value__": poison.value, "x-dlq-reason": b"poison"})
    )
    assert story.kinds() == []


def test_not_settled_is_reported(story: Story) -> None:
    story.linked("ev-1", "one")
    summary = evaluate(
        plan=story.plan,
        results=story.results,
        zoom=story.zoom,
        zoom_users={"ana": story.user},
        settled=Settled(False, 60.0, "stuck"),
    )
    assert [v.kind for v in summary.violations] == ["not_settled"]
