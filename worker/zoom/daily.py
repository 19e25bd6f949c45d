"""Hosts at Zoom's daily limit: their creates and updates are held back until the reset.

Zoom allows a host 100 meeting creates and updates a day and resets the count at 00:00 UTC.
Once Zoom has said a host reached it, sending that host's next creates and updates before the
reset would only be refused again (and, as a bug report of another integration shows, spend
quota that other calls need): ``check`` refuses them here, without a request. Other hosts, and
this host's gets and deletes, are unaffected. Per process: another replica learns it from Zoom
with one refused call of its own.
"""

from __future__ import annotations

from datetime import datetime

from worker.zoom.errors import ZoomDailyLimitReached
from worker.zoom.metrics import HOSTS_AT_DAILY_LIMIT


class DailyLimits:
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
