"""Token buckets per (Zoom account, category), so one busy account never slows another.

``RateLimiter`` is what the client needs: ``acquire`` a slot before each call, ``penalize``
when Zoom answered 429 anyway (another app on the account, a clock drifting). Two
implementations: ``AccountRateLimiter`` here, per process (for one replica, and tests), and
``worker/runtime/shared_limits.py``, one schedule per account in Postgres that every replica
takes its slots from, so N replicas together stay under the account's ceiling.

Zoom counts requests per account per second by category (create is Medium; get, update,
delete and list are Light). Each bucket refills at ``rate`` and holds at most ``burst``; with
``rate + burst`` equal to Zoom's limit, no one-second window can exceed it, so the worker stays
under the ceiling instead of bouncing off it.

``acquire`` reserves the next free slot and sleeps until it (first come, first served); a
waiter cancelled while asleep loses its slot, which only makes later callers slightly early
in a system that is already under the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Category = Literal["Light", "Medium"]


class RateLimiter(Protocol):
    async def acquire(self, account_id: str, category: Category) -> float:
        """Wait for the next slot of ``account_id``'s ``category``; the seconds waited. May
        block for that long; raises only what its store raises (the shared one: Postgres)."""

    async def penalize(self, account_id: str, category: Category, seconds: float) -> None:
        """Zoom said to wait ``seconds``: no slot of that account and category before then."""


@dataclass(frozen=True)
class BucketConfig:
    rate: float  # tokens per second
    burst: float  # bucket size

    @classmethod
    def under(
        cls, per_second: float, burst_share: float = 0.05, headroom: float = 0.03
    ) -> BucketConfig:
        """A bucket that never exceeds ``per_second`` in any one-second window, keeping
        ``headroom`` of it for the jitter between our clock and Zoom's window, and sustaining
        the rest less the burst (Pro's Medium 20/s: 18.4/s, a burst of 1)."""
        usable = per_second * (1 - headroom)
        burst = max(1.0, usable * burst_share)
        return cls(rate=max(usable - burst, 0.1), burst=burst)


# Zoom Pro: Medium 20/s, Light 30/s.
PRO: Mapping[Category, BucketConfig] = {
    "Medium": BucketConfig.under(20),
    "Light": BucketConfig.under(30),
}


@dataclass
class _Bucket:
    config: BucketConfig
    tokens: float
    updated: float = field(default=0.0)

    def reserve(self, now: float) -> float:
        """Take one token (possibly on credit); seconds until it is really ours."""
        if now >= self.updated:  # (``updated`` is ahead of ``now`` while a penalty lasts)
            elapsed = now - self.updated
            self.tokens = min(self.config.burst, self.tokens + elapsed * self.config.rate)
            self.updated = now
        self.tokens -= 1.0
        penalty = self.updated - now
        return penalty + (0.0 if self.tokens >= 0 else -self.tokens / self.config.rate)


class AccountRateLimiter:
    def __init__(
        self,
        limits: Mapping[Category, BucketConfig] = PRO,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limits = dict(limits)
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[tuple[str, Category], _Bucket] = {}

    async def acquire(self, account_id: str, category: Category) -> float:
        """Wait for a slot in ``account_id``'s ``category`` bucket; returns the seconds waited."""
        now = self._monotonic()
        bucket = self._buckets.get((account_id, category))
        if bucket is None:
            config = self._limits[category]
            bucket = self._buckets[(account_id, category)] = _Bucket(config, config.burst, now)
        wait = bucket.reserve(now)
        if wait > 0:
            await self._sleep(wait)
        return wait

    async def penalize(self, account_id: str, category: Category, seconds: float) -> None:
        bucket = self._buckets.get((account_id, category))
        if bucket is not None:
            # Empty, and refilling only from ``seconds`` from now.
            bucket.tokens = 0.0
            bucket.updated = max(bucket.updated, self._monotonic() + seconds)
