"""``PostgresLinkStore`` on a real Postgres: one guard per event at a time, no lease left
behind, none outliving a dead holder, no write by a holder whose lease ran out, no connection
held while a guard waits; a meeting is linked to one event only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from worker.leases import LeaseLost, Leases, LeaseSettings
from worker.pipeline.links import Link, MeetingTaken, PostgresLinkStore, _PostgresSession
from worker.runtime.resources import in_utc

Pool = AsyncConnectionPool[AsyncConnection]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    async with AsyncConnectionPool(database_url, min_size=2, max_size=4, open=False) as opened:
        await opened.wait()
        yield opened


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own, outside the pool."""
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


async def leases_of(conn: AsyncConnection, *keys: str) -> list[str]:
    cursor = await conn.execute("SELECT key FROM leases WHERE key = ANY(%s)", (list(keys),))
    return [row[0] for row in await cursor.fetchall()]


async def no_leases_left(conn: AsyncConnection, *keys: str) -> None:
    for _ in range(100):
        if not await leases_of(conn, *keys):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"leases left: {await leases_of(conn, *keys)}")


FAST = LeaseSettings(seconds=2.0, max_wait_seconds=0.05)


async def test_a_link_that_cannot_be_read_back_fails_the_guard_and_leaves_no_lease(
    pool: Pool, other: AsyncConnection
) -> None:
    # Stored by an earlier version: year 10000 in UTC, which Python cannot hold.
    await other.execute(
        "INSERT INTO event_links (event_id, organizer_user_id, state, seen_revision, start_time)"
        " VALUES ('ev-year10000', 'ana', 'creating', 1, '10000-01-01 12:00:00+00')"
    )
    store = PostgresLinkStore(pool)
    for _ in range(3):  # the poison policy's attempts: none may wait for an earlier one
        with pytest.raises(psycopg.DataError):
            async with asyncio.timeout(10), store.guard("ev-year10000"):
                pytest.fail("the guard cannot have read the link")
        await no_leases_left(other, "event:ev-year10000")


async def test_a_failing_body_and_a_cancelled_body_leave_no_lease(
    pool: Pool, other: AsyncConnection
) -> None:
    store = PostgresLinkStore(pool)
    keys = ("event:ev-body", "host:ana", "host:bruno")
    with pytest.raises(RuntimeError):
        async with store.guard("ev-body") as session:
            await session.hold_creates(["ana", "bruno"])
            assert sorted(await leases_of(other, *keys)) == sorted(keys)
            raise RuntimeError("the step failed")
    await no_leases_left(other, *keys)

    inside = asyncio.Event()

    async def stuck() -> None:
        async with store.guard("ev-body") as session:
            await session.hold_creates(["ana"])
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await no_leases_left(other, *keys)


async def test_a_guard_cancelled_while_waiting_for_the_lease_leaves_it_alone(
    pool: Pool, other: AsyncConnection
) -> None:
    store = PostgresLinkStore(pool, FAST)
    await other.execute(
        "INSERT INTO leases VALUES ('event:ev-busy', 'someone', now() + interval '1 hour')"
    )
    waiting = asyncio.create_task(_enter(store, "ev-busy"))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "the lease is someone else's"
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await leases_of(other, "event:ev-busy") == ["event:ev-busy"]  # still theirs
    await other.execute("DELETE FROM leases WHERE key = 'event:ev-busy'")
    async with asyncio.timeout(10), store.guard("ev-busy") as session:
        assert await session.get() is None


async def _enter(store: PostgresLinkStore, event_id: str) -> None:
    async with store.guard(event_id):
        pass


async def test_a_dead_holders_lease_runs_out_and_a_stale_writer_is_fenced_off(
    pool: Pool, other: AsyncConnection
) -> None:
    store = PostgresLinkStore(pool, FAST)
    # A worker died holding the event: its lease runs out, then the event is free again.
    await other.execute(
        "INSERT INTO leases VALUES ('event:ev-dead', 'dead', now() + interval '1 second')"
    )
    async with asyncio.timeout(10), store.guard("ev-dead") as session:
        await session.save(Link("ev-dead", "ana", "none", 1))

    # A holder (in another process: another store) stalled past its lease, and this one took
    # the event meanwhile.
    elsewhere = PostgresLinkStore(pool, FAST)
    async with elsewhere.guard("ev-stalled") as stalled:
        await stalled.save(Link("ev-stalled", "ana", "none", 1))
        await other.execute("UPDATE leases SET until = now() - interval '1 second'"
                            " WHERE key = 'event:ev-stalled'")  # fmt: skip
        async with store.guard("ev-stalled") as newer:
            await newer.save(Link("ev-stalled", "ana", "none", 2))
            with pytest.raises(LeaseLost):
                await stalled.save(Link("ev-stalled", "ana", "linked", 1, zoom_meeting_id=5))
            with pytest.raises(LeaseLost):
                await stalled.conclude(Link("ev-stalled", "ana", "none", 1), None)
            assert await newer.get() == Link("ev-stalled", "ana", "none", 2)  # untouched


async def test_guards_hold_no_connection_while_they_wait(database_url: str) -> None:
    """Twenty guards at once, each pausing as for a Zoom call, on a pool of two."""
    async with AsyncConnectionPool(
        database_url, min_size=1, max_size=2, timeout=5, open=False
    ) as small:
        await small.wait()
        store = PostgresLinkStore(small)

        async def one(i: int) -> None:
            async with store.guard(f"ev-small-{i}") as session:
                await session.get()
                await asyncio.sleep(0.5)  # Zoom
                await session.save(Link(f"ev-small-{i}", "ana", "none", 1))

        async with asyncio.timeout(20):
            await asyncio.gather(*(one(i) for i in range(20)))


async def test_one_event_is_guarded_by_one_guard_at_a_time(pool: Pool) -> None:
    store = PostgresLinkStore(pool, FAST)
    inside: list[int] = []
    overlaps = 0

    async def one(i: int) -> None:
        nonlocal overlaps
        async with store.guard("ev-shared"):
            inside.append(i)
            overlaps += len(inside) > 1
            await asyncio.sleep(0.05)
            inside.remove(i)

    async with asyncio.timeout(20):
        await asyncio.gather(*(one(i) for i in range(8)))
    assert overlaps == 0


async def test_the_creates_of_a_host_are_held_by_one_guard_at_a_time(pool: Pool) -> None:
    store = PostgresLinkStore(pool, FAST)
    order: list[str] = []
    first_holds = asyncio.Event()

    async def first() -> None:
        async with store.guard("ev-first") as session:
            await session.hold_creates(["ana"])
            first_holds.set()
            await asyncio.sleep(0.3)
            order.append("first done")

    async def second() -> None:
        await first_holds.wait()
        async with store.guard("ev-second") as session:
            await session.hold_creates(["ana", "ana"])
            order.append("second holds")

    async with asyncio.timeout(10):
        await asyncio.gather(first(), second())
    assert order == ["first done", "second holds"]


async def test_a_meeting_is_linked_to_one_event_only(pool: Pool) -> None:
    store = PostgresLinkStore(pool)
    async with store.guard("ev-one") as session:
        await session.save(Link("ev-one", "ana", "linked", 1, zoom_meeting_id=81234567890))
        handing_over = Link("ev-one", "ana", "creating", 2, zoom_meeting_id=81234567890)
        await session.save(handing_over.evolve(replaced_meeting_id=81234567891))
        assert await session.linked_elsewhere([81234567890, 81234567891]) == frozenset()
    async with store.guard("ev-twin") as session:
        twin = Link("ev-twin", "ana", "creating", 1)
        await session.save(twin)
        with pytest.raises(MeetingTaken):
            await session.save(twin.evolve(state="linked", zoom_meeting_id=81234567890))
        assert await session.get() == twin  # nothing stored
        await session.save(twin.evolve(state="linked", zoom_meeting_id=81234567892))
        assert await session.linked_elsewhere([81234567890, 81234567891, 81234567892, 7]) == {
            81234567890,
            81234567891,
        }


async def test_the_workers_sessions_read_times_back_in_utc(database_url: str) -> None:
    """Read west of UTC, the contract's earliest instants would be year 0 (a DataError)."""
    west = await AsyncConnection.connect(database_url, options="-c TimeZone=America/Los_Angeles")
    async with west:
        await in_utc(west)
        cursor = await west.execute("SELECT '0001-01-01 03:00:00+00'::timestamptz")
        assert await cursor.fetchone() == (datetime(1, 1, 1, 3, tzinfo=UTC),)


async def test_leases_that_ran_out_long_ago_are_swept(pool: Pool, other: AsyncConnection) -> None:
    await other.execute(
        "INSERT INTO leases VALUES ('event:ev-long-dead', 'gone', now() - interval '1 hour'),"
        " ('event:ev-just-out', 'slow', now() - interval '1 second'),"
        " ('event:ev-held', 'alive', now() + interval '1 minute')"
    )
    assert await Leases(pool, LeaseSettings(seconds=30)).sweep() >= 1
    left = await leases_of(other, "event:ev-long-dead", "event:ev-just-out", "event:ev-held")
    assert sorted(left) == ["event:ev-held", "event:ev-just-out"]


def test_evolve_is_replace_and_refuses_a_field_a_link_has_not() -> None:
    link = Link("ev-1", "ana", "linked", 3, zoom_meeting_id=5, join_url="https://zoom.us/j/5")
    evolved = link.evolve(seen_revision=4, state="cancelled")
    assert evolved == dataclasses.replace(link, seen_revision=4, state="cancelled")
    assert hash(evolved) == hash(dataclasses.replace(link, seen_revision=4, state="cancelled"))
    assert link.seen_revision == 3 and link.state == "linked"  # the original is untouched
    with pytest.raises(TypeError, match="no field meeting_id"):
        link.evolve(meeting_id=6)


async def test_one_renewal_loop_keeps_every_guard_of_a_store_past_its_lease(
    pool: Pool, other: AsyncConnection
) -> None:
    """Leases last 2 s here; guards held for 3.5 s, started apart, still hold theirs: the
    store's one renewal loop renewed them all. When the last guard ends, the loop ends."""
    store = PostgresLinkStore(pool, FAST)

    async def hold(event_id: str, start_after: float) -> None:
        await asyncio.sleep(start_after)
        async with store.guard(event_id) as session:
            await asyncio.sleep(3.5)
            await session.save(Link(event_id, "ana", "none", 1))  # LeaseLost, had it run out

    async with asyncio.timeout(15):
        await asyncio.gather(hold("ev-renew-1", 0.0), hold("ev-renew-2", 0.5))
    cursor = await other.execute(
        "SELECT count(*) FROM event_links WHERE event_id IN ('ev-renew-1', 'ev-renew-2')"
    )
    assert await cursor.fetchone() == (2,)
    assert store._leases._renewer is None  # nothing renews once nothing is held
    await no_leases_left(other, "event:ev-renew-1", "event:ev-renew-2")


async def test_a_stale_holder_saving_in_one_batch_with_the_events_next_owner_is_fenced_off(
    pool: Pool, other: AsyncConnection
) -> None:
    """Two sessions of one event in one process: the first (owner "stale") stalled past its
    lease, the second ("next") took the event over. Their writes go in one batch: the stale
    one stores nothing and hears so, though its event's link was stored in that statement."""
    leases = Leases(pool, FAST)
    await other.execute(
        "INSERT INTO leases VALUES ('event:ev-twins', 'stale', now() - interval '1 second')"
    )
    await leases.take("event:ev-twins", "next")
    stale = _PostgresSession(pool, leases, "stale", "ev-twins", None, None)
    owner = _PostgresSession(pool, leases, "next", "ev-twins", None, None)
    sent = leases.batches.sent
    outcomes = await asyncio.gather(
        stale.save(Link("ev-twins", "ana", "linked", 1, zoom_meeting_id=111)),
        owner.save(Link("ev-twins", "ana", "linked", 2, zoom_meeting_id=222)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], LeaseLost) and outcomes[1] is None
    outcomes = await asyncio.gather(
        stale.conclude(Link("ev-twins", "ana", "none", 1), None),
        owner.conclude(Link("ev-twins", "ana", "linked", 2, zoom_meeting_id=222), None),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], LeaseLost) and outcomes[1] is None
    assert leases.batches.sent == sent + 2  # each pair in one batch, as the test means
    assert await owner.get() == Link("ev-twins", "ana", "linked", 2, zoom_meeting_id=222)
