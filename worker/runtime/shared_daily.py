"""Hosts at Zoom's daily limit, known to every replica: one row per host in Postgres.

Zoom allows a host 100 meeting creates and updates a day (``worker/zoom/daily.py``). Held back
per process, each replica would learn a host's limit from a refused call of its own. Here the
replica Zoom refused records the hold in ``zoom_daily_limits`` (migration 0012; the later
``until`` wins) and every replica loads the holds still running into memory every
``refresh_seconds``, so the others hold the host back within that period.

Cost: nothing per Zoom call. ``check`` reads the in-memory map only; ``reached`` (once per host
and day) holds the host here at once and writes the row in the background; each replica runs one
small query per period. A write that fails (Postgres away) is logged and kept: the refresher
writes it with its next load, so the other replicas learn it once Postgres answers again. Rows
past by more than ``keep_seconds`` are deleted every ``prune_seconds``.

A hold ends at its ``until`` everywhere: deleting a row does not release the replicas that
already loaded it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Final

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from structlog.stdlib import get_logger

from worker.leases import autocommit
from worker.zoom.daily import DailyLimits

log = get_logger("worker.runtime.shared_daily")

_SAVE: Final = """
INSERT INTO zoom_daily_limits AS d (user_id, until)
SELECT * FROM unnest(%s::text[], %s::timestamptz[])
ON CONFLICT (user_id) DO UPDATE SET until = greatest(d.until, EXCLUDED.until)
"""
_LOAD: Final = "SELECT user_id, until FROM zoom_daily_limits WHERE until > now()"
_PRUNE: Final = "DELETE FROM zoom_daily_limits WHERE until < now() - make_interval(secs => %s)"
_START_SECONDS: Final = 10.0  # the first load, before any Zoom call: no longer than this
_SETTLE_SECONDS: Final = 5.0  # at shutdown, writes under way get this long to land


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SharedDailyLimits:
    """A ``worker.zoom.daily.DailyLimiter`` whose holds every replica shares through Postgres.

    ``running()`` loads the holds and keeps refreshing them for the block's duration."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection],
        *,
        refresh_seconds: float = 5.0,
        keep_seconds: float = 86_400.0,
        prune_seconds: float = 600.0,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._pool = pool
        self._local = DailyLimits()
        self._unsaved: dict[str, datetime] = {}  # learned here, not yet written
        self._writing: asyncio.Task[None] | None = None  # one writer at a time
        self._write_again = False
        self._refresh_seconds = refresh_seconds
        self._keep_seconds = keep_seconds
        self._prune_seconds = prune_seconds
        self._now = now
        self._failing = False

    # -- what the client calls -----------------------------------------------------------------

    def check(self, user_id: str, now: datetime) -> None:
        self._local.check(user_id, now)

    def reached(self, user_id: str, resets_at: datetime) -> None:
        self._local.hold(user_id, resets_at)
        held = self._unsaved.get(user_id)
        if held is None or resets_at > held:
            self._unsaved[user_id] = resets_at
        if self._writing is not None and not self._writing.done():
            self._write_again = True  # several refusals at once: one writer, one more pass
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the refresher writes it
            return
        self._writing = loop.create_task(self._write(), name="daily-limits-writer")

    async def _write(self) -> None:
        while True:
            self._write_again = False
            try:
                await self.save()
            except Exception as exc:  # kept in ``_unsaved``: the refresher tries again
                log.warning("daily_limit_not_shared", error=type(exc).__name__)
                return
            if not self._write_again:
                return

    # -- Postgres ------------------------------------------------------------------------------

    async def save(self) -> None:
        """Write the holds learned here and not yet written; raises what Postgres raises."""
        async with autocommit(self._pool) as conn:
            await self._save(conn)

    async def refresh(self) -> int:
        """Write what is unsaved, then load every hold still running: how many were loaded."""
        async with autocommit(self._pool) as conn:
            await self._save(conn)
            rows = await (await conn.execute(_LOAD)).fetchall()
        for user_id, until in rows:
            self._local.hold(user_id, until.astimezone(UTC))
        self._local.expire(self._now())
        return len(rows)

    async def prune(self) -> int:
        """Delete the rows past by more than ``keep_seconds``: how many."""
        async with autocommit(self._pool) as conn:
            cursor = await conn.execute(_PRUNE, (self._keep_seconds,))
            return cursor.rowcount

    async def _save(self, conn: AsyncConnection) -> None:
        now = self._now()
        for user_id in [u for u, until in self._unsaved.items() if until <= now]:
            del self._unsaved[user_id]  # over already: nothing to tell the others
        pending = dict(self._unsaved)
        if not pending:
            return
        await conn.execute(_SAVE, (list(pending), list(pending.values())))
        for user_id, until in pending.items():
            if self._unsaved.get(user_id) == until:  # not moved on meanwhile
                del self._unsaved[user_id]

    # -- lifecycle -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SharedDailyLimits]:
        """Load the holds now (a failure is logged, not raised), refresh them every
        ``refresh_seconds`` in the background, and at the end stop refreshing and let the
        writes under way land (before the pool closes)."""
        try:
            async with asyncio.timeout(_START_SECONDS):
                await self._refresh_quietly()
        except TimeoutError:
            log.warning("daily_limits_not_refreshed", error="TimeoutError")
        ended = asyncio.Event()
        task = asyncio.create_task(self._refreshing(ended), name="daily-limits-refresher")
        try:
            yield self
        finally:
            # The flag as well as the cancellation (a cancellation can be lost on the way:
            # worker/pool_cancellation.py).
            ended.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.settle()

    async def settle(self) -> None:
        """Wait (at most five seconds) for the write under way; cancel it past that."""
        writing = self._writing
        if writing is None or writing.done():
            return
        _, late = await asyncio.wait({writing}, timeout=_SETTLE_SECONDS)
        if late:
            writing.cancel()
            await asyncio.wait(late)
            log.warning("daily_limits_not_shared_at_shutdown", hosts=len(self._unsaved))

    async def _refreshing(self, ended: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        pruned = loop.time()
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_seconds):
                    await ended.wait()
            if ended.is_set():
                return
            await self._refresh_quietly()
            if loop.time() - pruned >= self._prune_seconds:
                pruned = loop.time()
                await self._prune_quietly()

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            if not self._failing:  # once per outage, not every period
                log.warning("daily_limits_not_refreshed", error=type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.info("daily_limits_refreshed_again")
        self._failing = False

    async def _prune_quietly(self) -> None:
        try:
            pruned = await self.prune()
        except Exception as exc:
            log.warning("daily_limits_not_pruned", error=type(exc).__name__)
            return
        if pruned:
            log.info("daily_limits_pruned", count=pruned)
