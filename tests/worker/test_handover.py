"""A link belongs to its host: a revision naming another organizer hands the meeting over.

End to end on real parts (worker subprocess, broker, Postgres, the Zoom emulator), with two
organizers on two Zoom accounts (each OAuth connect makes a Zoom user on its own account). The
emulator's journal of API calls proves that no request about a meeting carried a token other
than its host's.
"""

from __future__ import annotations

import ast
import itertools
import json
import signal
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ApiCall, ZoomEmulator

import worker.handlers
from schemas import FailureReason, ReplacedMeeting, SourceEvent, parse_event
from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event
from token_store import NotConnected
from worker.handlers import Applied, Step, carry_out
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.decision import Handover, decide, wanted_meeting
from worker.pipeline.links import Link
from worker.zoom.errors import MeetingNotFound, NotMeetingHost, ZoomUnavailable
from worker.zoom.models import Meeting, MeetingPatch, MeetingSpec, MeetingSummary

CREATE = "POST /v2/users/{userId}/meetings"
DELETE = "DELETE /v2/meetings/{meetingId}"


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"h-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        await p.connect("bruno")
        zoom.daily_limit = 100_000
        yield p
        assert not strangers(p), "a meeting was touched with another user's token"


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


def hosted_by(pipeline: Pipeline, user: str, event_id: str) -> list[int]:
    """The event's meetings live on ``user``'s Zoom account."""
    zoom_user = pipeline.zoom_users[user]
    return [m.id for m in pipeline.zoom.meetings(zoom_user) if m.topic.startswith(event_id)]


def about(pipeline: Pipeline, meeting_id: int) -> list[ApiCall]:
    return [c for c in pipeline.zoom.api_calls() if c.meeting_id == meeting_id]


def strangers(pipeline: Pipeline) -> list[ApiCall]:
    """Requests about a meeting whose token was not its host's (or was refused)."""
    return [
        c
        for c in pipeline.zoom.api_calls()
        if c.meeting_id is not None and (c.user_id is None or c.user_id != c.meeting_host_id)
    ]


def metric(port: int, line_start: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = [float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line_start)]
    return sum(values)


async def test_a_new_organizer_takes_the_meeting_over_each_meeting_touched_by_its_host(
    pipeline: Pipeline,
) -> None:
    ev = new_event_id()
    port = free_port()
    worker = pipeline.worker(HTTP_PORT=str(port))
    worker.start()
    try:
        await pipeline.sender.send("created", event(ev, 1, "ana", title=f"{ev} interview"))
        (created,) = await pipeline.results.wait_for(ev, 1)
        old = created["meeting"]["id"]
        assert hosted_by(pipeline, "ana", ev) == [old]

        await pipeline.sender.send("updated", event(ev, 2, "bruno", title=f"{ev} interview"))
        _, handed = await pipeline.results.wait_for(ev, 2)
        new = handed["meeting"]["id"]
        # Made on Bruno's account with his token, Ana's cancelled with hers.
        assert hosted_by(pipeline, "bruno", ev) == [new]
        assert hosted_by(pipeline, "ana", ev) == []

        await pipeline.sender.send("updated", event(ev, 3, "bruno", title=f"{ev} moved"))
        await pipeline.sender.send("deleted", event(ev, 4, "bruno", deleted=True))
        *_, updated, cancelled = await pipeline.results.wait_for(ev, 4)
        handovers = metric(port, 'zoom_worker_handovers_total{outcome="old_cancelled"}')
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    assert (handed["action"], handed["organizer_user_id"]) == ("created", "bruno")
    assert handed["meeting"]["join_url"]
    assert handed["replaced_meeting"] == {"id": old, "organizer_user_id": "ana", "cancelled": True}
    assert (updated["action"], updated["meeting"]["id"]) == ("updated", new)
    assert (cancelled["action"], cancelled["meeting"]["id"]) == ("cancelled", new)
    assert "replaced_meeting" not in updated and "replaced_meeting" not in cancelled
    assert hosted_by(pipeline, "bruno", ev) == []
    assert handovers == 1

    ana, bruno = pipeline.zoom_users["ana"], pipeline.zoom_users["bruno"]
    assert [(c.endpoint, c.user_id, c.status) for c in about(pipeline, old)] == [
        (CREATE, ana, 201),
        (DELETE, ana, 204),
    ]
    assert {c.user_id for c in about(pipeline, new)} == {bruno}
    assert [c.endpoint for c in about(pipeline, new)][-1] == DELETE
    assert strangers(pipeline) == []


async def test_an_old_host_no_longer_connected_keeps_their_meeting_and_the_result_says_so(
    pipeline: Pipeline,
) -> None:
    await pipeline.connect("dora")
    ev = new_event_id()
    port = free_port()
    worker = pipeline.worker(HTTP_PORT=str(port))
    worker.start()
    try:
        await pipeline.sender.send("created", event(ev, 1, "dora", title=f"{ev} interview"))
        (created,) = await pipeline.results.wait_for(ev, 1)
        old = created["meeting"]["id"]
        assert await pipeline.store.disconnect("dora")

        await pipeline.sender.send("updated", event(ev, 2, "bruno", title=f"{ev} interview"))
        _, handed = await pipeline.results.wait_for(ev, 2)
        await pipeline.sender.send("deleted", event(ev, 3, "bruno", deleted=True))
        *_, cancelled = await pipeline.results.wait_for(ev, 3)
        left = metric(port, 'zoom_worker_handovers_total{outcome="old_left"}')
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    new = handed["meeting"]["id"]
    assert (handed["action"], handed["organizer_user_id"]) == ("created", "bruno")
    assert handed["replaced_meeting"] == {
        "id": old,
        "organizer_user_id": "dora",
        "cancelled": False,
        "reason": "zoom_not_connected",
    }
    assert left == 1
    lines = [line for line in worker.log().splitlines() if "handover_old_meeting_left" in line]
    assert len(lines) == 1 and str(old) in lines[0] and "zoom_not_connected" in lines[0]
    # Left on Dora's account: no other token was tried on it, not even Bruno's.
    assert hosted_by(pipeline, "dora", ev) == [old]
    assert [c.endpoint for c in about(pipeline, old)] == [CREATE]
    # The new meeting is Bruno's, and the delete cancels it with his token.
    assert (cancelled["action"], cancelled["meeting"]["id"]) == ("cancelled", new)
    assert hosted_by(pipeline, "bruno", ev) == []
    assert {c.user_id for c in about(pipeline, new)} == {pipeline.zoom_users["bruno"]}
    assert strangers(pipeline) == []


# Each step of a handover; ":2" where the organizer's own create (revision 1, same worker)
# passes the step first.
HANDOVER_STEPS = [
    "after_intent:2",  # the new host's intent stored, the old meeting remembered
    "after_zoom:2",  # the new host's meeting made, the old one still live
    "after_handover_cancel",  # the old meeting cancelled, nothing stored yet
    "after_db:2",  # link and result stored, not published
    "after_publish:2",  # published, offset not committed
]


@pytest.mark.parametrize("step", HANDOVER_STEPS)
async def test_a_crash_at_any_handover_step_ends_with_one_meeting_the_new_hosts(
    pipeline: Pipeline, step: str
) -> None:
    ev = new_event_id()
    crashing = pipeline.worker(crash_at=step)
    crashing.start()
    await pipeline.sender.send("created", event(ev, 1, "ana", title=f"{ev} interview"))
    (created,) = await pipeline.results.wait_for(ev, 1, timeout=60)
    old = created["meeting"]["id"]
    source = event(ev, 2, "bruno", title=f"{ev} interview")
    await pipeline.sender.send("updated", source)
    assert crashing.wait(60) == -signal.SIGKILL, crashing.log()[-2000:]

    survivor = pipeline.worker()
    survivor.start()
    try:
        await pipeline.results.until(
            lambda: any(
                r.get("correlation_id") == source["message_id"]
                for r in pipeline.results.for_event(ev)
            ),
            timeout=60,
        )
        await pipeline.results.settle(1.0)
    finally:
        assert survivor.stop() == 0, survivor.log()[-2000:]
    results = [
        r for r in pipeline.results.for_event(ev) if r["correlation_id"] == source["message_id"]
    ]

    assert hosted_by(pipeline, "ana", ev) == []  # nothing orphaned on the old host's account
    (new,) = hosted_by(pipeline, "bruno", ev)  # one live meeting: the new host's
    assert {r["meeting"]["id"] for r in results} == {new}
    assert {r["message_id"] for r in results} == {results[0]["message_id"]}
    assert all(r["action"] == "created" for r in results)
    replaced = {"id": old, "organizer_user_id": "ana", "cancelled": True}
    assert all(r["replaced_meeting"] == replaced for r in results)
    assert strangers(pipeline) == []


def test_handlers_reach_zoom_only_through_the_host_bound_functions() -> None:
    """``worker.handlers.base`` is the only module that touches the Meetings port."""
    folder = Path(worker.handlers.__file__).parent
    offenders = [
        path.name
        for path in folder.glob("*.py")
        if path.name != "base.py"
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "meetings"
    ]
    assert offenders == []


# The handover handler in process, on an in-memory Zoom that refuses any token but the host's.

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class MemoryZoom:
    """Meetings by id with their host (a Talivo user here); ``trouble[user]`` is raised for
    every call with that user's token. Refuses a non-host like Zoom does (3003)."""

    hosts: dict[int, str] = field(default_factory=dict)
    summaries: dict[int, MeetingSummary] = field(default_factory=dict)
    trouble: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, str, int | None]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900))

    def _as(self, user: str, call: str, meeting_id: int | None) -> None:
        self.calls.append((call, user, meeting_id))
        if user in self.trouble:
            raise self.trouble[user]
        if meeting_id is not None and call != "create":
            if meeting_id not in self.hosts:
                raise MeetingNotFound("gone", status=404, code=3001)
            if self.hosts[meeting_id] != user:
                raise NotMeetingHost("not the host", status=400, code=3003)

    def add(self, user: str, spec: MeetingSpec, meeting_id: int | None = None) -> int:
        new = meeting_id or next(self._ids)
        self.hosts[new] = user
        self.summaries[new] = MeetingSummary(
            new, spec.topic, spec.start_time, spec.duration_minutes, spec.timezone,
            f"https://zoom.test/j/{new}", f"zoom-{user}", NOW,
        )  # fmt: skip
        return new

    async def create_meeting(self, user_id: str, spec: MeetingSpec) -> Meeting:
        self._as(user_id, "create", None)
        new = self.add(user_id, spec)
        s = self.summaries[new]
        return Meeting(new, s.join_url, None, s.topic, s.start_time, s.duration, s.timezone,
                       s.host_id, s.created_at)  # fmt: skip

    async def update_meeting(self, user_id: str, meeting_id: int, patch: MeetingPatch) -> None:
        self._as(user_id, "update", meeting_id)

    async def delete_meeting(self, user_id: str, meeting_id: int) -> None:
        self._as(user_id, "delete", meeting_id)
        del self.hosts[meeting_id]

    async def list_scheduled_meetings(self, user_id: str) -> Sequence[MeetingSummary]:
        self._as(user_id, "list", None)
        return [self.summaries[m] for m, host in self.hosts.items() if host == user_id]


@dataclass
class MemorySession:
    link: Link | None
    saved: list[Link] = field(default_factory=list)

    async def get(self) -> Link | None:
        return self.link

    async def save(self, link: Link) -> None:
        self.link = link
        self.saved.append(link)

    async def hold_creates(self, hosts: Iterable[str]) -> None:
        pass  # one event, one process: nothing to serialise

    async def linked_elsewhere(self, meeting_ids: Collection[int]) -> frozenset[int]:
        return frozenset()  # no other event


def calendar(revision: int, organizer: str) -> SourceEvent:
    body = event("e1", revision, organizer, title="Interview")
    return parse_event("updated", json.dumps(body).encode())


async def run(zoom: MemoryZoom, session: MemorySession, source: SourceEvent) -> Applied:
    decision = decide(source, session.link)
    assert isinstance(decision, Handover)
    step = Step(source, session.link, session, zoom, lambda: NOW, CrashPoints())
    return await carry_out(decision, step)


def ana_meeting(zoom: MemoryZoom) -> Link:
    wanted = wanted_meeting(calendar(1, "ana"))
    spec = MeetingSpec(wanted.topic, wanted.agenda, wanted.start_time, 30, wanted.timezone)
    zoom.add("ana", spec, meeting_id=42)
    return Link(
        "e1", "ana", "linked", 1, zoom_meeting_id=42, host_user_id="ana",
        title=wanted.topic, start_time=wanted.start_time, duration_minutes=30,
        timezone=wanted.timezone, agenda_digest=wanted.agenda_digest,
    )  # fmt: skip


def only_hosts(zoom: MemoryZoom, hosts: dict[int, str]) -> None:
    for call, user, meeting_id in zoom.calls:
        if meeting_id is not None and call != "create":
            assert hosts[meeting_id] == user, (call, user, meeting_id)


async def test_a_third_organizer_mid_handover_drops_the_unfinished_create_with_its_host() -> None:
    zoom = MemoryZoom()
    session = MemorySession(ana_meeting(zoom))
    zoom.trouble["bruno"] = ZoomUnavailable("down", status=503)
    with pytest.raises(ZoomUnavailable):  # Bruno's create: did it make one? Unknown.
        await run(zoom, session, calendar(2, "bruno"))
    assert session.link is not None and session.link.state == "creating"
    assert (session.link.replaced_meeting_id, session.link.replaced_host_user_id) == (42, "ana")
    del zoom.trouble["bruno"]
    wanted = wanted_meeting(calendar(2, "bruno"))
    spec = MeetingSpec(wanted.topic, wanted.agenda, wanted.start_time, 30, wanted.timezone)
    made_by_bruno = zoom.add("bruno", spec)  # it did

    applied = await run(zoom, session, calendar(3, "carla"))
    carlas = applied.link.zoom_meeting_id
    assert carlas is not None
    assert zoom.hosts == {carlas: "carla"}  # Bruno's unfinished one and Ana's are gone
    assert applied.link.host_user_id == "carla" and applied.link.replaced_meeting_id is None
    assert applied.replaced == ReplacedMeeting(id=42, organizer_user_id="ana", cancelled=True)
    only_hosts(zoom, {42: "ana", made_by_bruno: "bruno", carlas: "carla"})


@pytest.mark.parametrize(
    ("trouble", "reason"),
    [
        (NotConnected("no connection stored"), FailureReason.ZOOM_NOT_CONNECTED),
        (NotMeetingHost("reconnected elsewhere", status=400), FailureReason.NOT_MEETING_HOST),
    ],
    ids=["not-connected", "no-longer-host"],
)
async def test_a_permanent_refusal_on_the_old_hosts_side_leaves_the_old_meeting(
    trouble: Exception, reason: FailureReason
) -> None:
    zoom = MemoryZoom(trouble={"ana": trouble})
    session = MemorySession(ana_meeting(zoom))
    applied = await run(zoom, session, calendar(2, "bruno"))
    assert applied.replaced == ReplacedMeeting(
        id=42, organizer_user_id="ana", cancelled=False, reason=reason
    )
    assert zoom.hosts[42] == "ana"  # left, and no other token tried on it
    assert [c for c in zoom.calls if c[2] == 42] == [("delete", "ana", 42)]


async def test_retryable_trouble_on_the_old_hosts_side_keeps_the_intent_for_a_replay() -> None:
    zoom = MemoryZoom()
    session = MemorySession(ana_meeting(zoom))
    zoom.trouble["ana"] = ZoomUnavailable("down", status=503)
    with pytest.raises(ZoomUnavailable):  # after Bruno's create, at Ana's cancel
        await run(zoom, session, calendar(2, "bruno"))
    (brunos,) = [m for m, host in zoom.hosts.items() if host == "bruno"]
    del zoom.trouble["ana"]
    # The replay (the stored intent) adopts Bruno's meeting and then cancels Ana's.
    applied = await run(zoom, session, calendar(2, "bruno"))
    assert applied.link.zoom_meeting_id == brunos and zoom.hosts == {brunos: "bruno"}
    assert applied.replaced == ReplacedMeeting(id=42, organizer_user_id="ana", cancelled=True)
    assert [c[0] for c in zoom.calls if c[1] == "bruno"] == ["create", "list", "update"]
