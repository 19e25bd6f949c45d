"""Retries the worker owes itself, and when each is due: plain data and arithmetic, no I/O.

A failure that waiting may cure (Zoom unavailable, Zoom's rate limit outlasting the client's
budget, the host's daily limit, the token service unavailable) is not parked for an operator:
it becomes the event's ``PendingRetry``, stored beside its link (``retry_schedule``, migration
0006) and run again when due (``worker/pipeline/retries.py``). An event has at most one: a
newer revision replaces or clears it in the same statement that stores its own outcome.

``RetryPolicy.due_at`` spaces the attempts: the delays in turn (10 s, 1 min, 5 min, 15 min, then
every 30 min by default, each stretched by up to 10 % so a backlog does not come back in one
instant), never before what Zoom named (``not_before``: the daily limit's reset, ``Retry-After``,
the circuit breaker's next probe), and not at all past the horizon (24 h from the first
failure): then the failure is final and the record goes to the dead-letter topic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.engine.records import ConsumedRecord


@dataclass(frozen=True)
class Answer:
    """A result already published about an event: what a stale or redelivered message gets."""

    message_id: str  # the source message it answered
    topic: str
    value: bytes


@dataclass(frozen=True)
class PendingRetry:
    """The retry an event is owed: which message, how often it failed, when it is due, and the
    ``meeting.failed`` (with ``next_attempt_at``) the calendar was told about it."""

    event_id: str
    message_id: str
    revision: int
    attempt: int  # failures of this message so far, the first counted as 1
    reason: str
    first_failed_at: datetime
    due_at: datetime
    notice_topic: str
    notice: bytes

    @property
    def answer(self) -> Answer:
        return Answer(self.message_id, self.notice_topic, self.notice)

    def same_as(self, other: PendingRetry) -> bool:
        """The same retry, not one that replaced it (a newer revision, or a later attempt)."""
        return (self.message_id, self.attempt) == (other.message_id, other.attempt)


@dataclass(frozen=True)
class ScheduledRetry:
    """A pending retry with the source record to run again (its offset long committed)."""

    pending: PendingRetry
    record: ConsumedRecord


@dataclass(frozen=True)
class RetryPolicy:
    delays_seconds: tuple[float, ...] = (10.0, 60.0, 300.0, 900.0, 1800.0)
    horizon_seconds: float = 24 * 3600.0
    stretch: float = 0.1  # each delay is stretched by up to this share
    not_before_spread_seconds: float = 30.0  # most spread after a time Zoom named

    def __post_init__(self) -> None:
        if not self.delays_seconds or min(self.delays_seconds) <= 0:
            raise ValueError("retry delays must be positive, at least one")
        if self.horizon_seconds <= 0:
            raise ValueError("the retry horizon must be positive")

    def due_at(
        self,
        attempt: int,
        first_failed_at: datetime,
        now: datetime,
        not_before: datetime | None,
        rng: random.Random,
    ) -> datetime | None:
        """When failure number ``attempt`` (1-based) of a message is tried again; None when that
        would be past the horizon."""
        delay = self.delays_seconds[min(attempt, len(self.delays_seconds)) - 1]
        due = now + timedelta(seconds=delay * (1 + rng.uniform(0.0, self.stretch)))
        if not_before is not None and not_before > due:
            # Many events wait for the same instant (midnight UTC, a probe): spread them a
            # little, by at most a tenth of the wait.
            wait = (not_before - now).total_seconds()
            spread = min(self.not_before_spread_seconds, max(0.0, wait) * 0.1)
            due = not_before + timedelta(seconds=rng.uniform(0.0, spread))
        if due - first_failed_at > timedelta(seconds=self.horizon_seconds):
            return None
        return due
