"""Zoom's per-account ceilings shared by every replica: one schedule per account in Postgres.

Zoom limits calls per account per second (Pro: 20 creates, 30 other meeting calls). Each
replica pacing itself alone would let N replicas send N times that, and Zoom answers the excess
with 429s, retries and more 429s. Here every call takes its slot from one row per (account,
category) (``zoom_rate_limits``, migration 0011), in one statement: the slot is the later of
the row's ``next_slot`` and now less the burst, and ``next_slot`` moves one interval on. Calls
of all replicas are thus spaced at ``rate`` a second after a burst of ``burst``, and no
one-second window holds more than ``rate + burst`` of them, which ``BucketConfig.under`` keeps
under Zoom's ceiling with a little headroom. A 429 (another app on the account) pushes the
schedule out by Zoom's ``Retry-After`` for every replica at once.

Cost: one statement per Zoom call, batched with the others in flight: one ``Together``
statement takes the slots of a whole batch, each (account, category) row moved once for all
its calls in it, as the calls one after the other would have moved it. A row only that
account's calls touch: trouble with one account (its 429s) touches only its own row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from worker.leases import autocommit
from worker.statement_batches import StatementBatcher, Together
from worker.zoom.ratelimit import PRO, BucketConfig, Category

# One statement for a whole batch (``Together``), giving its calls the slots they would have
# got one after the other in the batch's order (their ordinal ``n``). An upsert may not touch a
# row twice, so the calls go in groups, one per row: the row moves on once, by the group's
# ``m`` intervals, from ``base`` (the later of its ``next_slot`` and now less the tolerance;
# now itself for a new row), and the group's k-th call gets ``base + (k - 1) * interval``, that
# is the new ``next_slot - (m - k + 1) * interval``. Interval and tolerance are in the group's
# key too: a limiter's calls of one category share them, and calls that did not would touch the
# row twice, fail the batch and each run alone, as before. "Now" is ``clock_timestamp()`` read
# in SET, once the row is locked, not ``now()``: the statement's start, maybe before a wait
# for another replica's statement on the row, and a base that much earlier would let that much
# more than the burst through. The waits are the slots less the clock after the writes. Every
# replica's statement locks its rows in (account, category) order: two never deadlock.
_TAKE: Final = Together("""
WITH c AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::float8[], %b::float8[])
        WITH ORDINALITY AS c(account, category, secs, tolerance, n)
), ranked AS (
    SELECT *, row_number() OVER (g ORDER BY n) AS k, count(*) OVER g AS m FROM c
    WINDOW g AS (PARTITION BY account, category, secs, tolerance)
), groups AS (
    SELECT account, category, secs, tolerance, count(*) AS m FROM c
    GROUP BY account, category, secs, tolerance
), taken AS (
    INSERT INTO zoom_rate_limits AS l (account_id, category, next_slot)
    SELECT account, category, clock_timestamp() + make_interval(secs => m * secs)
    FROM groups ORDER BY account, category
    ON CONFLICT (account_id, category) DO UPDATE SET next_slot = (
        SELECT greatest(l.next_slot, clock_timestamp() - make_interval(secs => g.tolerance))
            + make_interval(secs => g.m * g.secs)
        FROM groups g WHERE g.account = l.account_id AND g.category = l.category
    )
    RETURNING l.account_id, l.category, l.next_slot
)
SELECT r.n, EXTRACT(EPOCH FROM t.next_slot - clock_timestamp())::float8 - (r.m - r.k + 1) * r.secs
FROM ranked r JOIN taken t ON t.account_id = r.account AND t.category = r.category
""")
_PENALIZE: Final = """
INSERT INTO zoom_rate_limits AS l (account_id, category, next_slot)
VALUES (%(account)s, %(category)s, clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (account_id, category) DO UPDATE SET next_slot = greatest(
    l.next_slot, clock_timestamp() + make_interval(secs => %(seconds)s))
"""


class SharedRateLimiter:
    """A ``worker.zoom.ratelimit.RateLimiter`` whose schedule lives in Postgres."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection],
        limits: Mapping[Category, BucketConfig] = PRO,
    ) -> None:
        self._pool = pool
        self._limits = dict(limits)
        self._batches = StatementBatcher(pool)

    async def acquire(self, account_id: str, category: Category) -> float:
        config = self._limits[category]
        interval = 1.0 / config.rate
        # Slots may be this far in the past: a burst of ``burst`` after a quiet spell.
        tolerance = max(0.0, config.burst - 1.0) * interval
        # Batched with the other calls' (see ``_TAKE``): each gets the slot after the one
        # before it in the batch, which keeps the calls of one account in their arrival order.
        (ran,) = await self._batches.run(
            (_TAKE,), f"{account_id}/{category}", (account_id, category, interval, tolerance)
        )
        wait = max(0.0, float(ran.rows[0][0])) if ran.rows else 0.0
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def penalize(self, account_id: str, category: Category, seconds: float) -> None:
        params = {"account": account_id, "category": category, "seconds": seconds}
        async with autocommit(self._pool) as conn:
            await conn.execute(_PENALIZE, params)
