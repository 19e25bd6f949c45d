"""When an owed revoke is tried again: the pure core of the revoke outbox (no I/O, no clock).

An attempt ends in one of ``AttemptOutcome``; ``next_attempt`` turns it into the row's fate:
``None`` (done: delete the row) or the instant it is due again. A revoke is never given up:
Zoom confirming it (``revoked``) or no longer knowing the token (``invalid``: revoked already,
by us or by the user removing the app) are the only ways out. The n-th failure waits
``first * factor**(n-1)``, at most ``cap``, stretched by up to ``jitter`` of itself (``spread``
in [0, 1), drawn by the caller) so that replicas retrying one backlog drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

AttemptOutcome = Literal["revoked", "invalid", "failed", "unreadable"]
# revoked: Zoom answered 200; invalid: 400, Zoom no longer knows the token (done too);
# failed: unreachable, 5xx/429 after ZoomOAuth's retries, or our credentials refused;
# unreadable: the sealed token does not decrypt (its key left TOKEN_ENCRYPTION_KEYS).

DONE: frozenset[AttemptOutcome] = frozenset({"revoked", "invalid"})


@dataclass(frozen=True)
class RevokeSchedule:
    first: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.1
    # How long a claimed row is left alone. Must exceed the longest attempt (ZoomOAuth's
    # attempts x timeout plus its backoff: about 40 s by default), or a second replica could
    # claim a row whose revoke is still under way.
    claim: timedelta = timedelta(minutes=5)

    def delay(self, failures: int, spread: float = 0.0) -> timedelta:
        """The wait after the ``failures``-th failed attempt (1 for the first)."""
        growth = self.factor ** min(max(0, failures - 1), 64)  # far past any cap, no overflow
        base = self.first.total_seconds() * growth
        seconds = min(base, self.cap.total_seconds())
        return timedelta(seconds=seconds * (1 + self.jitter * min(max(spread, 0.0), 1.0)))

    def next_attempt(
        self, outcome: AttemptOutcome, failures: int, now: datetime, spread: float = 0.0
    ) -> datetime | None:
        """``None`` when ``outcome`` ends the revoke; else when to try again, ``failures``
        counting this attempt."""
        if outcome in DONE:
            return None
        return now + self.delay(failures, spread)
