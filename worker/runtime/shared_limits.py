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

Cost: one statement per Zoom call, batched with the others in flight, on a row only that
account's calls touch. Trouble with one account (its 429s) touches only its own row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from worker.leases import autocommit
from worker.statement_batches import StatementBatcher
from worker.zoom.ratelimit import PRO, BucketConfig, Category

_TAKE: Final = """
INSERT INTO zoom_rate_limits AS l (account_id, category, next_slot)
VALUES (%(account)s, %(category)s, clock_timestamp() + make_interval(secs => %(interval)s))
ON CONFLICT (account_id, category) DO UPDATE SET next_slot = greatest(
    l.next_slot, clock_timestamp() - make_interval(secs => %(tolerance)s)
) + make_interval(secs => %(interval)s)
RETURNING EXTRACT(EPOCH FROM l.next_slot - clock_timestamp())::float8 - %(interval)s
"""
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
        params = {
            "account": account_id,
            "category": category,
            "interval": interval,
            # Slots may be this far in the past: a burst of ``burst`` after a quiet spell.
            "tolerance": max(0.0, config.burst - 1.0) * interval,
        }
        # Batched with the other calls' (``worker/statement_batches.py``): in one transaction,
        # each sees the slot the one before took.
        (ran,) = await self._batches.run((_TAKE,), f"{account_id}/{category}", params)
        wait = max(0.0, float(ran.rows[0][0])) if ran.rows else 0.0
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def penalize(self, account_id: str, category: Category, seconds: float) -> None:
        params = {"account": account_id, "category": category, "seconds": seconds}
        async with autocommit(self._pool) as conn:
            await conn.execute(_PENALIZE, params)
