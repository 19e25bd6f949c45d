"""Leases on a real Postgres: cancellation while taking, release under pool pressure, crossing
host orders, two runners claiming retries at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import pytest
from devservices.faultproxy import FaultProxy
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from worker.leases import LeaseSettings, LeaseTimeout
from worker.pipeline.links import PostgresLinkStore
from worker.pipeline.retries import PostgresRetryQueue

Pool = AsyncConnectionPool[AsyncConnection]
LEASE = LeaseSettings(seconds=3.0, max_wait_seconds=0.05)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    async with AsyncConnectionPool(database_url, min_size=2, max_size=4, open=False) as p:
        await p.wait()
        yield p


async def time_to_enter(store: PostgresLinkStore, event_id: str) -> float:
    started = time.monotonic()
    async with asyncio.timeout(20), store.guard(event_id):
        pass
    return time.monotonic() - started


async def test_a_guard_cancelled_while_its_lease_is_being_taken_leaves_no_lease(
    pool: Pool, database_url: str
) -> None:
    """links.py: 'When the guard ends, whichever way (... even while waiting for the lease),
    every lease it took is released.' Cancelled after the statement reached Postgres."""
    parts = urlsplit(database_url)
    assert parts.hostname and parts.port
    with FaultProxy(parts.hostname, parts.port, name="atk-slow-pg") as proxy:
        url = urlunsplit(parts._replace(netloc=f"{parts.username}@{proxy.address}"))
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as slow:
            await slow.wait()
            proxy.delay(0.4)
            store = PostgresLinkStore(slow, LEASE)
            ev = f"ev-cx-{uuid.uuid4().hex[:6]}"
            task = asyncio.create_task(time_to_enter(store, ev))
            await asyncio.sleep(0.6)  # the TAKE has reached Postgres; its answer has not come
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            proxy.delay(0)
            await store.settle()  # as the worker does before its pool closes
    waited = await time_to_enter(PostgresLinkStore(pool, LEASE), ev)
    assert waited < 1.0, f"the next guard on the event waited {waited:.1f}s for an orphan lease"


async def test_a_guard_ending_while_the_pool_is_busy_releases_its_lease(pool: Pool) -> None:
    """The release waits 1 s for a pooled connection (leases.py _RELEASE_WAIT_SECONDS); the
    pool's own timeout (DATABASE_POOL_TIMEOUT_SECONDS) is 30 s. A busy pool for 1.5 s."""
    store = PostgresLinkStore(pool, LEASE)
    ev = f"ev-busy-{uuid.uuid4().hex[:6]}"
    held = asyncio.Event()

    async def busy() -> None:
        async with pool.connection():
            held.set()
            await asyncio.sleep(1.5)

    async with store.guard(ev):
        hogs = [asyncio.create_task(busy()) for _ in range(4)]
        await held.wait()
        await asyncio.sleep(0.1)
    await asyncio.gather(*hogs)
    waited = await time_to_enter(store, ev)
    assert waited < 1.0, f"the next message of the event waited {waited:.1f}s (lease not released)"


async def test_crossing_host_orders_are_broken_not_left_to_hang(pool: Pool) -> None:
    """LinkSession.hold_creates: 'a later call may deadlock with another step, which Postgres
    breaks by failing one of them'. With leases nobody detects it: both wait give_up_seconds."""
    settings = LeaseSettings(seconds=3.0, max_wait_seconds=0.05, give_up_seconds=4.0)
    store = PostgresLinkStore(pool, settings)
    both = asyncio.Barrier(2)
    x, y = f"hx-{uuid.uuid4().hex[:4]}", f"hy-{uuid.uuid4().hex[:4]}"

    async def step(ev: str, first: str, second: str) -> str:
        async with store.guard(ev) as session:
            await session.hold_creates([first])
            await both.wait()
            try:
                await session.hold_creates([second])
            except LeaseTimeout:
                return "timed out"
            return "held both"

    started = time.monotonic()
    try:
        async with asyncio.timeout(8):  # give_up_seconds is 4
            outcomes = await asyncio.gather(step("ev-x", x, y), step("ev-y", y, x))
    except TimeoutError:
        outcomes = ["still waiting after 8 s (past give_up_seconds=4)"]
    took = time.monotonic() - started
    assert "held both" in outcomes and took < 2.0, (outcomes, f"{took:.1f}s")


async def test_two_runners_claiming_at_once_never_claim_one_retry_twice(
    database_url: str,
) -> None:
    rows = 400
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        tag = uuid.uuid4().hex[:6]
        now = datetime.now(UTC)
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO retry_schedule (event_id, message_id, revision, attempt, reason,"
                " first_failed_at, due_at, notice_topic, notice, source_topic, source_partition,"
                " source_offset, header_names, header_values, source_timestamp_ms)"
                " VALUES (%s, 'm', 1, 1, 'zoom_unavailable', %s, %s, 't', '', 't', 0, 0,"
                " '{}', '{}', 0)",
                [(f"cl-{tag}-{i}", now, now) for i in range(rows)],
            )
    pools = [
        AsyncConnectionPool(database_url, min_size=2, max_size=2, open=False) for _ in range(4)
    ]
    for p in pools:
        await p.open()
    try:
        queues = [PostgresRetryQueue(p, lease_seconds=60) for p in pools for _ in range(2)]
        claimed: list[str] = []

        async def drain(q: PostgresRetryQueue) -> None:
            while True:
                got = await q.claim(7)
                got = [s for s in got if s.pending.event_id.startswith(f"cl-{tag}")]
                if not got:
                    return
                claimed.extend(s.pending.event_id for s in got)

        await asyncio.gather(*(drain(q) for q in queues))
        assert len(claimed) == rows and len(set(claimed)) == rows, (len(claimed), len(set(claimed)))
    finally:
        for p in pools:
            await p.close()
