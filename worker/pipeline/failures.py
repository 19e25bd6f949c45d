"""The one place where every failure of a step becomes a ``meeting.failed`` reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import FailureReason
from token_store import TokenStoreError
from worker.zoom.errors import (
    ZoomCircuitOpen,
    ZoomDailyLimitReached,
    ZoomError,
    ZoomRateLimited,
)

# Errors a step may raise that are someone else's fault, not a bug in the worker.
EXPECTED: tuple[type[Exception], ...] = (ZoomError, TokenStoreError)


@dataclass(frozen=True)
class Failure:
    reason: FailureReason
    retryable: bool  # waiting may cure it: the worker retries by itself (pipeline/pending.py)
    attempts: int
    detail: str  # for logs and dead-letter headers; never holds a token
    not_before: datetime | None = None  # no use trying before this (Zoom said so)


def classify(exc: Exception, now: datetime) -> Failure:
    if isinstance(exc, ZoomError):
        reason = exc.reason or FailureReason.ZOOM_REJECTED_REQUEST
        return Failure(
            reason, exc.retryable, exc.attempts, type(exc).__name__, _not_before(exc, now)
        )
    if isinstance(exc, TokenStoreError):
        return Failure(exc.reason, exc.retryable, 1, type(exc).__name__)
    raise TypeError(f"not an expected failure: {type(exc).__name__}") from exc


def _not_before(exc: ZoomError, now: datetime) -> datetime | None:
    if isinstance(exc, ZoomDailyLimitReached):
        return exc.resets_at
    if isinstance(exc, ZoomRateLimited | ZoomCircuitOpen) and exc.retry_after is not None:
        return now + timedelta(seconds=exc.retry_after)
    return None
