"""The pure side of retrying by itself: when each attempt is due, what a pending retry answers,
and the schedule stored beside the link (on a real Postgres)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas import parse_event, parse_failed
from tests.worker.harness import event
from worker.engine.records import ConsumedRecord
from worker.pipeline.decision import Create, Republish, decide
from worker.pipeline.links import Link, PostgresLinkStore
from worker.pipeline.pending import PendingRetry, RetryPolicy, ScheduledRetry
from worker.pipeline.results import answer_for, notice_message_id, result_message_id
from worker.pipeline.retries import PostgresRetryQueue
from worker.zoom.answers import next_daily_reset

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def test_the_delays_grow_then_repeat_and_stop_at_the_horizon() -> None:
    policy = RetryPolicy(delays_seconds=(10, 60, 300), horizon_seconds=3600, stretch=0.0)
    rng = random.Random(1)
    waits = [
        (policy.due_at(n, NOW, NOW, None, rng) - NOW).total_seconds()  # type: ignore[operator]
        for n in range(1, 6)
    ]
    assert waits == [10, 60, 300, 300, 300]
    late = NOW + timedelta(seconds=3500)
    assert policy.due_at(4, NOW, late, None, rng) is None, "past the horizon: no more"


def test_each_delay_is_stretched_by_at_most_its_share() -> None:
    policy = RetryPolicy(delays_seconds=(100,), stretch=0.1)
    rng = random.Random(7)
    waits = {(policy.due_at(1, NOW, NOW, None, rng) - NOW).total_seconds() for _ in range(200)}  # type: ignore[operator]
    assert min(waits) >= 100 and max(waits) <= 110 and len(waits) > 100


def test_a_time_zoom_named_is_waited_for_and_spread_a_little() -> None:
    policy = RetryPolicy(delays_seconds=(10,))
    reset = next_daily_reset(NOW)
    assert reset == datetime(2026, 11, 29, tzinfo=UTC)
    dues = [policy.due_at(1, NOW, NOW, reset, random.Random(i)) for i in range(50)]
    assert all(d is not None and reset <= d <= reset + timedelta(seconds=30) for d in dues)
    soon = NOW + timedelta(seconds=5)  # a near time: spread by a tenth of the wait at most
    due = policy.due_at(1, NOW, NOW, soon, random.Random(3))
    assert due is not None and NOW + timedelta(seconds=10) <= due <= NOW + timedelta(seconds=11)


def test_zooms_daily_reset_is_the_next_midnight_utc() -> None:
    assert next_daily_reset(datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC)) == datetime(
        2026, 11, 29, tzinfo=UTC
    )
    assert next_daily_reset(datetime(2026, 11, 28, 0, 0, tzinfo=UTC)) == datetime(
        2026, 11, 29, tzinfo=UTC
    )


def pending(revision: int, message_id: str = "m-pending", attempt: int = 1) -> PendingRetry:
    notice = {
        "schema_version": 1, "message_id": notice_message_id(message_id),
        "correlation_id": message_id, "event_id": "e1", "revision": revision,
        "organizer_user_id": "ana", "action": "create", "reason": "zoom_unavailable",
        "message": "Zoom could not be reached.", "retryable": True, "attempts": 3,
        "failed_at": "2026-11-28T09:30:00Z", "next_attempt_at": "2026-11-28T09:30:10Z",
    }  # fmt: skip
    return PendingRetry(
        "e1", message_id, revision, attempt, "zoom_unavailable", NOW, NOW,
        "meeting.failed", json.dumps(notice).encode(),
    )  # fmt: skip


def source(revision: int, message_id: str | None = None):  # type: ignore[no-untyped-def]
    body = event("e1", revision)
    if message_id:
        body["message_id"] = message_id
    return parse_event("updated", json.dumps(body).encode())


def test_a_message_no_newer_than_a_pending_retry_gets_its_notice_again() -> None:
    waiting = pending(4)
    assert decide(source(4, "m-pending"), None, waiting) == Republish(waiting.answer)
    older = source(3)
    assert decide(older, None, waiting) == Republish(waiting.answer)
    answer = parse_failed(answer_for(older, waiting.answer, "meeting.linked"))
    # Correlated to the older message, under the notice's kind of id (not the outcome's).
    assert answer.correlation_id == older.message_id
    assert answer.message_id == notice_message_id(older.message_id)
    assert answer.message_id != result_message_id(older.message_id)
    assert answer_for(source(4, "m-pending"), waiting.answer, "meeting.linked") == waiting.notice


def test_a_newer_revision_is_decided_as_if_nothing_were_pending() -> None:
    assert isinstance(decide(source(5), None, pending(4)), Create)


def record(value: bytes) -> ConsumedRecord:
    return ConsumedRecord("event.updated", 2, 41, b"e1", value, (("traceparent", b"00-ab"),), 7)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[AsyncConnection]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as opened:
        await opened.wait()
        yield opened


async def test_the_schedule_is_stored_with_the_link_replaced_by_newer_and_claimed_once(
    pool: AsyncConnectionPool[AsyncConnection],
) -> None:
    event_id = f"ev-sched-{random.randrange(10**9)}"
    store = PostgresLinkStore(pool)
    now = datetime.now(UTC)
    first = PendingRetry(
        event_id, "m1", 1, 1, "zoom_unavailable", now, now - timedelta(seconds=1),
        "meeting.failed", b"{}",
    )  # fmt: skip
    async with store.guard(event_id) as session:
        await session.conclude(
            Link(event_id, "ana", "none", -1), ScheduledRetry(first, record(b"v1"))
        )
    async with store.guard(event_id) as session:
        assert await session.pending() == first

    one, two = PostgresRetryQueue(pool), PostgresRetryQueue(pool)
    claimed = [s for s in await one.claim(100) if s.pending.event_id == event_id]
    assert [s.pending for s in claimed] == [first]
    assert claimed[0].record == record(b"v1"), "the record comes back as consumed"
    assert [s for s in await two.claim(100) if s.pending.event_id == event_id] == []
    await one.release()
    again = [s for s in await two.claim(100) if s.pending.event_id == event_id]
    assert [s.pending for s in again] == [first], "given back, then claimed by another"

    newer = PendingRetry(
        event_id, "m2", 2, 1, "zoom_rate_limited", now, now + timedelta(hours=1),
        "meeting.failed", b"{}",
    )  # fmt: skip
    async with store.guard(event_id) as session:
        await session.conclude(
            Link(event_id, "ana", "none", -1), ScheduledRetry(newer, record(b"v2"))
        )
    async with store.guard(event_id) as session:
        assert await session.pending() == newer
        assert not newer.same_as(first)
    assert [s for s in await one.claim(100) if s.pending.event_id == event_id] == [], "not due"
    assert await one.expedite(["zoom_rate_limited"]) >= 1
    assert [
        s.pending.message_id for s in await one.claim(100) if s.pending.event_id == event_id
    ] == ["m2"]

    async with store.guard(event_id) as session:
        await session.conclude(Link(event_id, "ana", "none", 2), None)
    async with store.guard(event_id) as session:
        assert await session.pending() is None, "an outcome clears the retry"
    stats = await one.stats()
    assert stats.pending >= 0 and stats.oldest_age_seconds >= 0
