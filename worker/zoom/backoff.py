"""Retry timing, free of I/O: exponential backoff with full jitter, and Zoom's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): uniform in [0, min(cap, base * 2**(n-1))]."""

    base_seconds: float = 0.2
    cap_seconds: float = 10.0

    def delay(self, retry_number: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, retry_number - 1))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds, an HTTP date or ISO time.

    ``None`` when absent or unreadable; never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    at: datetime | None
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        at = None
    if at is None:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if at.tzinfo is None:
        return None
    return max(0.0, (at - now).total_seconds())
