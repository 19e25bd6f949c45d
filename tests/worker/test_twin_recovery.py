"""Crash recovery adopts only a meeting no other event has: twins never share one.

Two events booked alike (same organizer, title and start: "twins") get meetings Zoom cannot tell
apart, so a recovering create sees the twin's meeting among its own candidates. The handlers run
in process here, on the real link store (Postgres) and an in-memory Zoom that hands out ids in
order and the same ``created_at``: the oldest candidate is the one with the lowest id.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Collection, Iterable

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas import SourceEvent, parse_event
from tests.worker.harness import event
from tests.worker.test_handover import NOW, MemoryZoom
from worker.handlers import Applied, Step, carry_out
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.decision import Create, decide, wanted_meeting
from worker.pipeline.links import Link, LinkSession, PostgresLinkStore
from worker.zoom.models import MeetingSpec


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresLinkStore]:
    pool: AsyncConnectionPool[AsyncConnection]
    async with AsyncConnectionPool(database_url, min_size=2, max_size=4, open=False) as pool:
        store = PostgresLinkStore(pool)
        yield store
        # The leases' releases under way, before the pool closes (as the worker does): every
        # test here books the same host, whose lease would otherwise hold the next test 30 s.
        await store.settle()


def calendar(event_id: str, revision: int = 1) -> SourceEvent:
    body = event(event_id, revision, "ana", title="Interview")  # every twin alike
    return parse_event("created", json.dumps(body).encode())


_ID_BLOCKS = itertools.count(10_000, 1_000)


def fresh_zoom() -> MemoryZoom:
    """An in-memory Zoom whose meeting ids no earlier test's links (same database) name."""
    return MemoryZoom(_ids=itertools.count(next(_ID_BLOCKS)))


def twins() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"ev-{tag}-a", f"ev-{tag}-b"


def made(zoom: MemoryZoom) -> int:
    """A meeting for the twins' booking, as a create makes it (crashed or not)."""
    wanted = wanted_meeting(calendar("any"))
    spec = MeetingSpec(wanted.topic, wanted.agenda, wanted.start_time, 30, wanted.timezone)
    return zoom.add("ana", spec)


def intent(event_id: str) -> Link:
    """A create's stored intent: the create crashed after Zoom's answer or before it."""
    wanted = wanted_meeting(calendar(event_id))
    return Link(
        event_id, "ana", "creating", -1, host_user_id="ana", title=wanted.topic,
        start_time=wanted.start_time, duration_minutes=30, timezone=wanted.timezone,
        agenda_digest=wanted.agenda_digest, creating_since=NOW,
    )  # fmt: skip


async def store_link(store: PostgresLinkStore, link: Link) -> None:
    async with store.guard(link.event_id) as session:
        await session.save(link)


async def linked(store: PostgresLinkStore, event_id: str) -> int | None:
    async with store.guard(event_id) as session:
        link = await session.get()
    assert link is not None and link.state == "linked"
    return link.zoom_meeting_id


async def carry(session: LinkSession, zoom: MemoryZoom, source: SourceEvent) -> Applied:
    """One message's step, stored as the processor stores it (the result aside)."""
    link = await session.get()
    decision = decide(source, link)
    applied = await carry_out(
        decision, Step(source, link, session, zoom, lambda: NOW, CrashPoints())
    )
    await session.save(applied.link.evolve(seen_revision=source.revision))
    return applied


async def run(store: PostgresLinkStore, zoom: MemoryZoom, source: SourceEvent) -> Applied:
    async with store.guard(source.event_id) as session:
        return await carry(session, zoom, source)


def touched(zoom: MemoryZoom, meeting_id: int) -> list[str]:
    return [call for call, _, about in zoom.calls if about == meeting_id]


async def test_recovery_never_adopts_the_meeting_a_twin_is_linked_to(
    store: PostgresLinkStore,
) -> None:
    a, b = twins()
    zoom = fresh_zoom()
    twins_meeting = made(zoom)  # b's, linked: the older of the two
    leftover = made(zoom)  # what a's crashed create made
    await store_link(store, intent(b).evolve(state="linked", zoom_meeting_id=twins_meeting))
    await store_link(store, intent(a))

    applied = await run(store, zoom, calendar(a))

    assert applied.link.zoom_meeting_id == leftover
    assert set(zoom.hosts) == {twins_meeting, leftover}
    assert touched(zoom, twins_meeting) == []  # neither patched nor deleted


async def test_twins_that_both_crashed_end_with_a_meeting_each_and_none_left_over(
    store: PostgresLinkStore,
) -> None:
    a, b = twins()
    zoom = fresh_zoom()
    made(zoom)  # each create crashed after Zoom's answer
    made(zoom)
    await store_link(store, intent(a))
    await store_link(store, intent(b))

    await run(store, zoom, calendar(a))  # adopts one of the two, deletes the other
    await run(store, zoom, calendar(b))  # finds none left that is not a's: creates its own

    mine, theirs = await linked(store, a), await linked(store, b)
    assert mine != theirs
    assert set(zoom.hosts) == {mine, theirs}


async def test_recovery_waits_for_a_twins_create_under_way_and_leaves_its_meeting_alone(
    store: PostgresLinkStore,
) -> None:
    a, b = twins()
    zoom = fresh_zoom()
    leftover = made(zoom)  # a's crashed create
    await store_link(store, intent(a))
    made_by_b = asyncio.Event()

    async def twin_creating() -> int | None:
        async with store.guard(b) as session:
            link = await session.get()
            source = calendar(b)
            decision = decide(source, link)
            assert decision == Create(wanted_meeting(source), recover=False)
            applied = await carry_out(
                decision, Step(source, link, session, zoom, lambda: NOW, CrashPoints())
            )
            made_by_b.set()  # Zoom made b's meeting; b's link does not name it yet
            await asyncio.sleep(0.5)
            await session.save(applied.link)
            return applied.link.zoom_meeting_id

    creating = asyncio.create_task(twin_creating())
    await made_by_b.wait()
    async with asyncio.timeout(10):
        applied = await run(store, zoom, calendar(a))
        b_meeting = await creating

    assert applied.link.zoom_meeting_id == leftover
    assert b_meeting is not None and b_meeting != leftover
    assert set(zoom.hosts) == {leftover, b_meeting}
    assert touched(zoom, b_meeting) == []


class Unguarded:
    """A session that neither serialises creates nor sees other links: a worker of a version
    without either (a rolling deploy), racing with this one. Only the unique index is left."""

    def __init__(self, session: LinkSession) -> None:
        self._session = session

    async def get(self) -> Link | None:
        return await self._session.get()

    async def save(self, link: Link) -> None:
        await self._session.save(link)

    async def hold_creates(self, hosts: Iterable[str]) -> None:
        pass

    async def linked_elsewhere(self, meeting_ids: Collection[int]) -> frozenset[int]:
        return frozenset()


async def test_a_meeting_another_link_names_is_not_adopted_even_unseen(
    store: PostgresLinkStore,
) -> None:
    a, b = twins()
    zoom = fresh_zoom()
    twins_meeting = made(zoom)
    leftover = made(zoom)
    await store_link(store, intent(b).evolve(state="linked", zoom_meeting_id=twins_meeting))
    await store_link(store, intent(a))

    async with store.guard(a) as session:
        applied = await carry(Unguarded(session), zoom, calendar(a))

    # The claim on the twin's meeting was refused (MeetingTaken): it is not ours, untouched.
    assert applied.link.zoom_meeting_id == leftover
    assert touched(zoom, twins_meeting) == []
    assert await linked(store, b) == twins_meeting
