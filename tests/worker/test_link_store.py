"""``PostgresLinkStore`` on a real Postgres: the guard never leaves a lock behind, a meeting is
linked to one event only.

The guard's locks are session-level advisory locks on a pooled connection: one left behind
(the guard failing between taking the lock and its ``try/finally``) outlives the message, and
the next attempt on that event, on another connection, waits for it forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from worker.pipeline.links import Link, MeetingTaken, PostgresLinkStore
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


async def advisory_locks(conn: AsyncConnection) -> list[tuple[bool]]:
    """Every advisory lock in this database held or awaited by another session."""
    cursor = await conn.execute(
        "SELECT granted FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND pid <> pg_backend_pid()"
    )
    return await cursor.fetchall()


async def no_locks_left(conn: AsyncConnection) -> None:
    for _ in range(100):
        if not await advisory_locks(conn):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"advisory locks left: {await advisory_locks(conn)}")


async def free(conn: AsyncConnection, event_id: str) -> bool:
    """Whether another session could take ``event_id``'s lock now (it is released again)."""
    cursor = await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 7))", (event_id,))
    row = await cursor.fetchone()
    assert row is not None
    if row[0]:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 7))", (event_id,))
    return bool(row[0])


async def test_a_link_that_cannot_be_read_back_fails_the_guard_and_leaves_no_lock(
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
        assert await free(other, "ev-year10000")
    await no_locks_left(other)


async def test_a_failing_body_and_a_cancelled_body_leave_no_lock(
    pool: Pool, other: AsyncConnection
) -> None:
    store = PostgresLinkStore(pool)
    with pytest.raises(RuntimeError):
        async with store.guard("ev-body") as session:
            await session.hold_creates(["ana", "bruno"])
            raise RuntimeError("the step failed")
    await no_locks_left(other)

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
    await no_locks_left(other)
    assert await free(other, "ev-body")


async def test_a_guard_cancelled_while_waiting_for_the_lock_leaves_no_lock(
    pool: Pool, other: AsyncConnection
) -> None:
    store = PostgresLinkStore(pool)
    await other.execute("SELECT pg_advisory_lock(hashtextextended('ev-busy', 7))")

    async def waiting() -> None:
        async with store.guard("ev-busy"):
            pytest.fail("the lock is someone else's")

    task = asyncio.create_task(waiting())
    for _ in range(200):  # until its lock request waits in Postgres
        if (False,) in await advisory_locks(other):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the guard never asked for the lock")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await other.execute("SELECT pg_advisory_unlock(hashtextextended('ev-busy', 7))")
    await no_locks_left(other)
    async with asyncio.timeout(10), store.guard("ev-busy") as session:
        assert await session.get() is None


async def test_the_creates_of_a_host_are_held_by_one_guard_at_a_time(pool: Pool) -> None:
    store = PostgresLinkStore(pool)
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
