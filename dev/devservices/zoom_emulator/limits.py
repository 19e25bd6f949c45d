"""Zoom's rate limits: per-account per-category requests per second, per-host daily writes.

Per-second limits use a sliding one-second window of accepted requests per (account,
category). The daily limit counts a host's meeting create/update requests per UTC day.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from devservices.zoom_emulator.models import Plan

Category = Literal["Light", "Medium"]

# Requests per second by plan (Zoom's rate-limit page and third-party summaries).
QPS: dict[Plan, dict[Category, int]] = {
    "free": {"Light": 4, "Medium": 2},
    "pro": {"Light": 30, "Medium": 20},
    "business": {"Light": 80, "Medium": 60},
}
DAILY_CREATE_UPDATE_LIMIT = 100


@dataclass(frozen=True)
class QpsVerdict:
    allowed: bool
    limit: int
    remaining: int


class RateLimits:
    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, Category], collections.deque[float]] = {}
        self._daily: dict[tuple[str, date], int] = {}
        self.refusals: collections.Counter[str] = collections.Counter()  # QPS 429s per account
        self.qps: dict[Plan, dict[Category, int]] = {p: dict(c) for p, c in QPS.items()}
        self.daily_limit = DAILY_CREATE_UPDATE_LIMIT

    def take_qps(self, account_id: str, plan: Plan, category: Category) -> QpsVerdict:
        limit = self.qps[plan][category]
        now = self._monotonic()
        with self._lock:
            window = self._windows.setdefault((account_id, category), collections.deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self.refusals[account_id] += 1
                return QpsVerdict(False, limit, 0)
            window.append(now)
            return QpsVerdict(True, limit, limit - len(window))

    def take_daily(self, user_id: str, today: date) -> bool:
        with self._lock:
            used = self._daily.get((user_id, today), 0)
            if used >= self.daily_limit:
                return False
            self._daily[(user_id, today)] = used + 1
            return True

    def set_daily_used(self, user_id: str, today: date, used: int) -> None:
        with self._lock:
            self._daily[(user_id, today)] = used

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._daily.clear()
            self.refusals.clear()
            self.qps = {p: dict(c) for p, c in QPS.items()}
            self.daily_limit = DAILY_CREATE_UPDATE_LIMIT
