"""Hosts at Zoom's daily limit: their creates and updates are held back until the reset.

Zoom allows a host 100 meeting creates and updates a day and resets the count at 00:00 UTC.
Once Zoom has said a host reached it, sending that host's next creates and updates before the
reset would only be refused again (and, as a bug report of another integration shows, spend
quota that other calls need): ``check`` refuses them here, without a request. Other hosts, and
this host's gets and deletes, are unaffected.

``DailyLimiter`` is what the client needs. Two implementations: ``DailyLimits`` here, per
process (another replica learns it from Zoom with one refused call of its own), and
``worker/runtime/shared_daily.py``, which shares what one replica learned with every other
through Postgres while still checking in memory only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from worker.zoom.errors import ZoomDailyLimitReached
from worker.zoom.metrics import HOSTS_AT_DAILY_LIMIT


class DailyLimiter(Protocol):
    def check(self, user_id: str, now: datetime) -> None:
        """Raise ``ZoomDailyLimitReached`` (nothing sent) while ``user_id`` is held back.
        Called before every create and update: synchronous, no I/O."""

    def reached(self, user_id: str, resets_at: datetime) -> None:
        """Zoom refused ``user_id``'s create or update for its daily limit until ``resets_at``.
        Never raises, never waits."""


class DailyLimits:
    """Per process; also the in-memory map behind the shared implementation."""

    def __init__(self) -> None:
        self._until: dict[str, datetime] = {}

    def check(self, user_id: str, now: datetime) -> None:
        """Raise ``ZoomDailyLimitReached`` (nothing sent) while ``user_id`` is held back."""
        until = self._until.get(user_id)
        if until is None:
            return
        if now >= until:
            del self._until[user_id]
            HOSTS_AT_DAILY_LIMIT.set(len(self._until))
            return
        raise ZoomDailyLimitReached(
            "the host reached Zoom's daily limit of meeting creates and updates; held back "
            "until the reset",
            resets_at=until,
            status=None,
            attempts=0,
        )

    def reached(self, user_id: str, resets_at: datetime) -> None:
        self._until[user_id] = resets_at
        HOSTS_AT_DAILY_LIMIT.set(len(self._until))

    def hold(self, user_id: str, until: datetime) -> None:
        """Hold ``user_id`` back until ``until``, or longer if it already is."""
        held = self._until.get(user_id)
        if held is None or until > held:
            self._until[user_id] = until
            HOSTS_AT_DAILY_LIMIT.set(len(self._until))

    def expire(self, now: datetime) -> None:
        """Forget the holds that ended by ``now`` (``check`` alone forgets only those it meets)."""
        ended = [user for user, until in self._until.items() if now >= until]
        for user in ended:
            del self._until[user]
        HOSTS_AT_DAILY_LIMIT.set(len(self._until))
