"""The one place where every failure of a step becomes a ``meeting.failed`` reason."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import FailureReason
from token_store import TokenStoreError
from worker.zoom.errors import ZoomError

# Errors a step may raise that are someone else's fault, not a bug in the worker.
EXPECTED: tuple[type[Exception], ...] = (ZoomError, TokenStoreError)


@dataclass(frozen=True)
class Failure:
    reason: FailureReason
    retryable: bool
    attempts: int
    detail: str  # for logs and dead-letter headers; never holds a token


def classify(exc: Exception) -> Failure:
    if isinstance(exc, ZoomError):
        reason = exc.reason or FailureReason.ZOOM_REJECTED_REQUEST
        return Failure(reason, exc.retryable, max(1, exc.attempts), type(exc).__name__)
    if isinstance(exc, TokenStoreError):
        return Failure(exc.reason, exc.retryable, 1, type(exc).__name__)
    raise TypeError(f"not an expected failure: {type(exc).__name__}") from exc
