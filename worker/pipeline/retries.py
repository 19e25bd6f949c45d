"""Running pending retries when they are due, from whichever replica is free.

Why a schedule in Postgres and not retry topics: a retry must be superseded by a newer revision
of its event and never applied after one. Stored beside the link, under the event's guard, that
is one statement (``LinkSession.conclude``); across retry topics it would need a lookup per
record anyway. A schedule also waits for any instant (the daily reset at 00:00 UTC, Zoom's
``Retry-After``), where retry topics have a fixed delay each, and it is already as durable as
the links. The cost: retries poll the database (one indexed query every ``poll_seconds`` per
replica), and their pace is the runner's, not the consumer's.

``RetryRunner.run`` is a loop beside the consumer. Its contract:

- **Claims** due retries (``RetryQueue.claim``: ``FOR UPDATE SKIP LOCKED`` and a lease of
  ``lease_seconds``, so two replicas never run one retry at once and a replica that dies frees
  its claims when the leases run out), at most ``rate_per_second`` a second and ``concurrency``
  at a time, and runs each through the poison guard into ``Processor.retry``. The outcome (done,
  rescheduled, superseded) is stored by the processor; a retry the guard parks is forgotten.
- **Follows the Zoom breaker** (``Gate``): while it is open, claims nothing; when it would let a
  probe through, claims one retry waiting on Zoom, due or not, as the probe; when it closes
  after an outage, makes every retry waiting on Zoom due now (``expedite``), and the pace
  drains them without tripping Zoom's rate limits.
- **Blocks** on the database (waiting an outage out through ``ready``) and on admission slots
  inside the processor; never raises for a retry's failure.
- **Stops** on ``stop``: claims nothing more, lets running retries finish within
  ``grace_seconds`` (then cancels them), and gives its remaining claims back.
- Keeps ``zoom_worker_retries_pending``, ``..._retries_due`` and ``..._retry_oldest_age_seconds``
  (the whole schedule, every ``stats_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool
from structlog.stdlib import get_logger

from schemas import FailureReason
from worker.engine.records import ConsumedRecord
from worker.pipeline import metrics
from worker.pipeline.pending import PendingRetry, ScheduledRetry

log = get_logger("worker.pipeline.retries")

# Retries that wait on Zoom as a whole (not on one host or account): the breaker's business.
WAITING_ON_ZOOM: tuple[str, ...] = (FailureReason.ZOOM_UNAVAILABLE.value,)

GateMode = Literal["closed", "probe", "open"]


class Gate(Protocol):
    """The Zoom circuit breaker as the runner sees it (``worker/zoom/breaker.py``)."""

    recoveries: int  # times it closed after an outage

    def mode(self) -> GateMode:
        """``closed``: calls go; ``probe``: one call may go; ``open``: none."""


@dataclass(frozen=True)
class Stats:
    pending: int
    due: int
    oldest_age_seconds: float


class RetryQueue(Protocol):
    async def claim(self, limit: int, *, any_due: bool = False) -> list[ScheduledRetry]:
        """Claim up to ``limit`` unclaimed due retries, earliest first (``any_due``: due or not,
        of those waiting on Zoom); each claim is a lease. Commits."""

    async def expedite(self, reasons: Sequence[str]) -> int:
        """Make every retry of ``reasons`` due now; how many were waiting. Commits."""

    async def forget(self, pending: PendingRetry) -> None:
        """Delete ``pending`` if it is still the event's retry (the guard parked it). Commits."""

    async def release(self) -> None:
        """Give back every claim this queue holds. Commits."""

    async def stats(self) -> Stats: ...


class RetryRun(Protocol):
    async def __call__(self, scheduled: ScheduledRetry) -> bool:
        """Run one retry to its end; True when it was parked (dead-lettered) instead."""


_PENDING = ", ".join(f"r.{c}" for c in PendingRetry.__dataclass_fields__)
_CLAIM = f"""
UPDATE retry_schedule r
SET claimed_by = %(me)s, claimed_until = now() + make_interval(secs => %(lease)s)
FROM (
    SELECT event_id FROM retry_schedule
    WHERE (claimed_until IS NULL OR claimed_until < now())
      AND (due_at <= now() OR (%(any_due)s AND reason = ANY(%(zoom)s)))
    ORDER BY due_at, first_failed_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE r.event_id = due.event_id
RETURNING {_PENDING}, r.source_topic, r.source_partition, r.source_offset, r.source_key,
    r.source_value, r.header_names, r.header_values, r.source_timestamp_ms
"""


class PostgresRetryQueue:
    """``RetryQueue`` over ``retry_schedule`` (migration 0006); claims are this process's."""

    def __init__(
        self, pool: AsyncConnectionPool[AsyncConnection], *, lease_seconds: float = 60.0
    ) -> None:
        self._pool = pool
        self._lease = lease_seconds
        self.owner = f"{uuid.uuid4()}"

    async def claim(self, limit: int, *, any_due: bool = False) -> list[ScheduledRetry]:
        params = {
            "me": self.owner,
            "lease": self._lease,
            "any_due": any_due,
            "zoom": list(WAITING_ON_ZOOM),
            "limit": limit,
        }
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_CLAIM, params)).fetchall()
        width = len(PendingRetry.__dataclass_fields__)
        return [
            ScheduledRetry(
                PendingRetry(*row[:width]),
                ConsumedRecord(
                    topic=row[width],
                    partition=row[width + 1],
                    offset=row[width + 2],
                    key=row[width + 3],
                    value=row[width + 4],
                    headers=tuple(zip(row[width + 5], row[width + 6], strict=True)),
                    timestamp_ms=row[width + 7],
                ),
            )
            for row in rows
        ]

    async def expedite(self, reasons: Sequence[str]) -> int:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "UPDATE retry_schedule SET due_at = now()"
                " WHERE due_at > now() AND reason = ANY(%s)",
                (list(reasons),),
            )
            return cursor.rowcount

    async def forget(self, pending: PendingRetry) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM retry_schedule"
                " WHERE event_id = %s AND message_id = %s AND attempt = %s",
                (pending.event_id, pending.message_id, pending.attempt),
            )

    async def release(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE retry_schedule SET claimed_by = NULL, claimed_until = NULL"
                " WHERE claimed_by = %s",
                (self.owner,),
            )

    async def stats(self) -> Stats:
        async with (
            self._pool.connection() as conn,
            conn.cursor(row_factory=class_row(Stats)) as cur,
        ):
            await cur.execute(
                "SELECT count(*)::int AS pending,"
                " (count(*) FILTER (WHERE due_at <= now()"
                "   AND (claimed_until IS NULL OR claimed_until < now())))::int AS due,"
                " COALESCE(EXTRACT(EPOCH FROM now() - min(first_failed_at)), 0)::float8"
                "   AS oldest_age_seconds"
                " FROM retry_schedule"
            )
            stats = await cur.fetchone()
        assert stats is not None
        return stats


@dataclass(frozen=True)
class RunnerSettings:
    poll_seconds: float = 1.0
    rate_per_second: float = 10.0
    concurrency: int = 16
    stats_seconds: float = 10.0
    grace_seconds: float = 30.0


class RetryRunner:
    """See the module docstring."""

    def __init__(
        self,
        queue: RetryQueue,
        run_one: RetryRun,
        gate: Gate,
        *,
        settings: RunnerSettings | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._queue = queue
        self._run_one = run_one
        self._gate = gate
        self._settings = settings or RunnerSettings()
        self._ready = ready
        self._running: set[asyncio.Task[None]] = set()
        self._probing = False
        self._recoveries_seen = gate.recoveries
        self._allowance = 0.0
        self._last_tick = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        stats = asyncio.create_task(self._stats_loop(stop), name="retry-stats")
        try:
            while not stop.is_set():
                try:
                    await self._tick()
                except Exception as exc:  # the database, most likely: wait it out
                    log.warning("retry_runner_error", error=type(exc).__name__)
                    if self._ready is not None:
                        await self._ready()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_seconds):
                        await stop.wait()
        finally:
            stats.cancel()
            await self._finish()

    async def _tick(self) -> None:
        if self._gate.recoveries != self._recoveries_seen:
            self._recoveries_seen = self._gate.recoveries
            woken = await self._queue.expedite(WAITING_ON_ZOOM)
            log.info("retries_expedited", count=woken, why="zoom_breaker_closed")
        now = time.monotonic()
        pace = self._settings.rate_per_second
        self._allowance = min(pace, self._allowance + (now - self._last_tick) * pace)
        self._last_tick = now
        mode = self._gate.mode()
        if mode == "open":
            return
        if mode == "probe":
            if not self._probing:
                for scheduled in await self._queue.claim(1, any_due=True):
                    self._probing = True
                    self._start(scheduled, probe=True)
            return
        room = min(int(self._allowance), self._settings.concurrency - len(self._running))
        if room <= 0:
            return
        claimed = await self._queue.claim(room)
        self._allowance -= len(claimed)
        for scheduled in claimed:
            self._start(scheduled, probe=False)

    def _start(self, scheduled: ScheduledRetry, *, probe: bool) -> None:
        task = asyncio.create_task(self._one(scheduled, probe), name="retry")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _one(self, scheduled: ScheduledRetry, probe: bool) -> None:
        try:
            if await self._run_one(scheduled):
                await self._queue.forget(scheduled.pending)
        except Exception as exc:  # the lease runs out and the retry comes round again
            log.error(
                "retry_not_run",
                event_id=scheduled.pending.event_id,
                error=type(exc).__name__,
            )
        finally:
            if probe:
                self._probing = False

    async def _stats_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                stats = await self._queue.stats()
                metrics.RETRIES_PENDING.set(stats.pending)
                metrics.RETRIES_DUE.set(stats.due)
                metrics.RETRY_OLDEST_SECONDS.set(stats.oldest_age_seconds)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.stats_seconds):
                    await stop.wait()

    async def _finish(self) -> None:
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=self._settings.grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        try:
            await self._queue.release()
        except Exception as exc:  # the leases run out by themselves
            log.warning("retry_claims_not_released", error=type(exc).__name__)
