"""The worker end to end: every action, ordering by revision, each failure, bad input."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        # Ana makes far more meetings than a real host's 100 a day; that limit has its own test.
        zoom.daily_limit = 100_000
        p.port = free_port()
        worker = p.worker(HTTP_PORT=str(p.port))
        worker.start()
        try:
            yield p
        finally:
            code = worker.stop()
            assert code == 0, worker.log()[-3000:]
            log = worker.log()
            assert not [s for s in zoom.issued_secrets() if s in log], "a token reached the log"


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


def actions(results: list[dict[str, object]]) -> list[object]:
    return [
        r.get("action") if "action" in r and "reason" not in r else r["reason"] for r in results
    ]


async def test_an_event_lives_its_whole_life(pipeline: Pipeline) -> None:
    ev = new_event_id()
    ana = pipeline.zoom_users["ana"]
    steps = [
        ("created", event(ev, 1)),
        ("updated", event(ev, 2, shift_minutes=60, title="Moved")),
        ("updated", event(ev, 3, video="none")),
        ("updated", event(ev, 4)),
        ("deleted", event(ev, 5, deleted=True)),
    ]
    expected = ["created", "updated", "cancelled", "created", "cancelled"]
    seen_meetings: list[int] = []
    for n, (kind, body) in enumerate(steps, start=1):
        await pipeline.sender.send(kind, body)
        results = await pipeline.results.wait_for(ev, n)
        latest = results[-1]
        assert latest["action"] == expected[n - 1]
        assert latest["revision"] == n and latest["correlation_id"] == body["message_id"]
        assert "start_url" not in json.dumps(latest)
        if latest["action"] == "created":
            assert latest["meeting"]["join_url"].startswith("http")
            seen_meetings.append(latest["meeting"]["id"])
            assert [m.id for m in pipeline.zoom.meetings(ana) if m.id in seen_meetings] == [
                latest["meeting"]["id"]
            ]
        if n == 2:
            (meeting,) = [m for m in pipeline.zoom.meetings(ana) if m.id == seen_meetings[0]]
            assert meeting.topic == "Moved"
    assert not [m for m in pipeline.zoom.meetings(ana) if m.id in seen_meetings]


async def test_an_update_before_its_create_creates_and_the_late_create_is_stale(
    pipeline: Pipeline,
) -> None:
    ev = new_event_id()
    await pipeline.sender.send("updated", event(ev, 2, title="Second"))
    await pipeline.results.wait_for(ev, 1)
    await pipeline.sender.send("created", event(ev, 1, title="First"))
    first, second = await pipeline.results.wait_for(ev, 2)
    assert first["action"] == "created" and first["revision"] == 2
    # The late create changes nothing: it is answered with the current meeting.
    assert second["meeting"]["id"] == first["meeting"]["id"]
    topics = [m.topic for m in pipeline.zoom.meetings(pipeline.zoom_users["ana"])
              if m.id == first["meeting"]["id"]]  # fmt: skip
    assert topics == ["Second"]


async def test_a_create_after_its_delete_does_nothing(pipeline: Pipeline) -> None:
    ev = new_event_id()
    await pipeline.sender.send("created", event(ev, 1))
    await pipeline.results.wait_for(ev, 1)
    await pipeline.sender.send("deleted", event(ev, 3, deleted=True))
    await pipeline.results.wait_for(ev, 2)
    late = event(ev, 2, title="Late")
    await pipeline.sender.send("created", late)
    created, _, answer = await pipeline.results.wait_for(ev, 3)
    # The late create is answered with the current truth and changes nothing on Zoom.
    assert answer["correlation_id"] == late["message_id"]
    assert answer["action"] == "cancelled" and answer["revision"] == 3
    ids = {m.id for m in pipeline.zoom.meetings(pipeline.zoom_users["ana"])}
    assert created["meeting"]["id"] not in ids


async def test_a_delete_first_leaves_nothing_to_create(pipeline: Pipeline) -> None:
    ev = new_event_id()
    before = len(pipeline.zoom.meetings(pipeline.zoom_users["ana"]))
    await pipeline.sender.send("deleted", event(ev, 2, deleted=True))
    await pipeline.drained(pipeline.port)
    await pipeline.sender.send("created", event(ev, 1))
    await pipeline.drained(pipeline.port)
    await pipeline.results.settle(0.5)
    assert pipeline.results.for_event(ev) == []
    assert len(pipeline.zoom.meetings(pipeline.zoom_users["ana"])) == before


async def test_an_exact_redelivery_republishes_the_same_result(pipeline: Pipeline) -> None:
    ev = new_event_id()
    body = event(ev, 1)
    await pipeline.sender.send("created", body)
    await pipeline.sender.send("created", body)
    first, again = await pipeline.results.wait_for(ev, 2)
    assert first == again
    mine = [m for m in pipeline.zoom.meetings(pipeline.zoom_users["ana"])
            if m.id == first["meeting"]["id"]]  # fmt: skip
    assert len(mine) == 1


async def test_an_organizer_without_zoom_gets_not_connected(pipeline: Pipeline) -> None:
    ev = new_event_id()
    await pipeline.sender.send("created", event(ev, 1, organizer="carla"))
    (failed,) = await pipeline.results.wait_for(ev, 1)
    assert failed["reason"] == "zoom_not_connected"
    assert failed["message"].startswith("User has not authorized Zoom access")
    assert failed["retryable"] is False and failed["action"] == "create"


async def test_editing_a_meeting_another_zoom_account_hosts_fails_not_host(
    pipeline: Pipeline,
) -> None:
    ev = new_event_id()
    await pipeline.connect("bruno")
    await pipeline.sender.send("created", event(ev, 1, organizer="bruno"))
    await pipeline.results.wait_for(ev, 1)
    await pipeline.connect("bruno")  # reconnects with a different Zoom account
    await pipeline.sender.send("updated", event(ev, 2, organizer="bruno", title="New title"))
    await pipeline.results.wait_for(ev, 2)
    await pipeline.sender.send("deleted", event(ev, 3, organizer="bruno", deleted=True))
    _, update, cancel = await pipeline.results.wait_for(ev, 3)
    assert (update["reason"], update["action"]) == ("not_meeting_host", "update")
    assert update["message"] == "Only the meeting host can modify or delete this meeting."
    assert (cancel["reason"], cancel["action"]) == ("not_meeting_host", "cancel")


async def test_a_meeting_deleted_by_hand_is_recreated_on_update(pipeline: Pipeline) -> None:
    ev = new_event_id()
    await pipeline.sender.send("created", event(ev, 1))
    (created,) = await pipeline.results.wait_for(ev, 1)
    # The host deletes it in Zoom's own app, with a grant of their own.
    access, _ = pipeline.zoom.grant_tokens(pipeline.zoom_users["ana"])
    gone = httpx.delete(
        f"{pipeline.zoom.api_base_url}/meetings/{created['meeting']['id']}",
        headers={"Authorization": f"Bearer {access}"},
    )
    assert gone.status_code == 204
    await pipeline.sender.send("updated", event(ev, 2, title="Still on"))
    _, recreated = await pipeline.results.wait_for(ev, 2)
    assert recreated["action"] == "created"
    assert recreated["meeting"]["id"] != created["meeting"]["id"]


async def test_bad_input_is_parked_and_reported(pipeline: Pipeline) -> None:
    ev = new_event_id()
    broken = event(ev, 1)
    broken["start"] = "next tuesday"
    await pipeline.sender.send("created", broken)
    await pipeline.sender.send("updated", b"\xff not json", key=ev)
    (failed,) = await pipeline.results.wait_for(ev, 1)
    assert failed["reason"] == "invalid_event" and failed["event_id"] == ev
    await pipeline.results.settle(1.0)
    parked = [h for h in pipeline.results.dead_letters() if h.get("__value__") in
              (json.dumps(broken).encode(), b"\xff not json")]  # fmt: skip
    assert len(parked) == 2
    for headers in parked:
        assert headers["x-dlq-reason"] == b"invalid_event"
        assert headers["x-dlq-source-topic"] in (
            pipeline.topics.created.encode(),
            pipeline.topics.updated.encode(),
        )


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    order=st.permutations(["c1", "u2", "n3", "u4", "d5"]),
    with_delete=st.booleans(),
    dupes=st.lists(st.integers(0, 3), max_size=3),
)
async def test_any_arrival_order_ends_in_the_highest_revision(
    pipeline: Pipeline, order: list[str], with_delete: bool, dupes: list[int]
) -> None:
    ev = new_event_id()
    bodies = {
        "c1": ("created", event(ev, 1, title=f"{ev} one")),
        "u2": ("updated", event(ev, 2, title=f"{ev} two")),
        "n3": ("updated", event(ev, 3, video="none")),
        "u4": ("updated", event(ev, 4, title=f"{ev} four")),
        "d5": ("deleted", event(ev, 5, deleted=True)),
    }
    names = [n for n in order if with_delete or n != "d5"]
    sequence = [bodies[n] for n in names] + [bodies[names[i]] for i in dupes]
    await pipeline.sender.send_all(sequence)
    await pipeline.drained(pipeline.port)
    alive = [m.topic for m in pipeline.zoom.meetings(pipeline.zoom_users["ana"])
             if m.topic.startswith(ev)]  # fmt: skip
    assert alive == ([] if with_delete else [f"{ev} four"])
