"""Everything a call to Zoom's Meetings API can end in, besides success.

Each error carries the ``meeting.failed`` reason it stands for (``None``: the caller decides),
whether trying again later may help, and how many HTTP attempts were made::

    ZoomError
    ├── ZoomUnavailable            zoom_unavailable          retryable  (connect errors, timeouts,
    │   │                                                               5xx, non-JSON 5xx, budget
    │   │                                                               spent; ``outcome_unknown``
    │   │                                                               when Zoom may have acted)
    │   └── ZoomCircuitOpen        zoom_unavailable          retryable  (not sent: most calls
    │                                                                   failed lately; the breaker
    │                                                                   probes in ``retry_after``)
    ├── ZoomRateLimited            zoom_rate_limited         retryable  (per-second 429s outlasted
    │                                                                   the retry budget)
    ├── ZoomDailyLimitReached      zoom_daily_limit_reached  retryable  (100 writes/host/day: after
    │                                                                   ``resets_at``; held back
    │                                                                   until then, not sent)
    ├── ZoomAuthorizationRejected  zoom_authorization_expired permanent (401/124 again after one
    │                                                                   refresh and retry)
    ├── NotMeetingHost             not_meeting_host          permanent  (code 200, 3000-range)
    ├── MeetingNotFound            None                      permanent  (3001)
    ├── ZoomAccountInactive        zoom_account_inactive     permanent  (1001, 3161)
    └── ZoomRejectedRequest        zoom_rejected_request     permanent  (300, other 4xx)
        └── InvalidMeetingSpec     zoom_rejected_request     permanent  (refused before sending:
                                                                        topic > 200, agenda >
                                                                        2000, naive start_time)

Errors of the token port (the token store's own) are not wrapped: they pass through as raised.
Messages hold status, Zoom's code and message, never a token.
"""

from __future__ import annotations

from datetime import datetime

from schemas.reasons import FailureReason


class ZoomError(Exception):
    reason: FailureReason | None = None
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.attempts = attempts


class ZoomUnavailable(ZoomError):
    reason = FailureReason.ZOOM_UNAVAILABLE
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        attempts: int = 1,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, status=status, code=code, attempts=attempts)
        # The request may have been applied (answer lost or timed out after sending): a
        # create must then be looked up before it is tried again.
        self.outcome_unknown = outcome_unknown


class ZoomCircuitOpen(ZoomUnavailable):
    """Not sent: Zoom failed most calls lately (``worker/zoom/breaker.py``)."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, attempts=0)
        self.retry_after: float | None = retry_after  # seconds until the breaker's next probe


class ZoomRateLimited(ZoomError):
    reason = FailureReason.ZOOM_RATE_LIMITED
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        code: int | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, attempts=attempts)
        self.retry_after = retry_after  # seconds Zoom asked us to wait, if it said


class ZoomDailyLimitReached(ZoomError):
    reason = FailureReason.ZOOM_DAILY_LIMIT_REACHED
    retryable = True  # after the reset, not within the client's retry budget

    def __init__(
        self,
        message: str,
        *,
        resets_at: datetime,
        status: int | None = 429,
        code: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, code=code, attempts=attempts)
        self.resets_at = resets_at  # when the host may create and update again


class ZoomAuthorizationRejected(ZoomError):
    reason = FailureReason.ZOOM_AUTHORIZATION_EXPIRED


class NotMeetingHost(ZoomError):
    reason = FailureReason.NOT_MEETING_HOST


class MeetingNotFound(ZoomError):
    reason = None


class ZoomAccountInactive(ZoomError):
    reason = FailureReason.ZOOM_ACCOUNT_INACTIVE


class ZoomRejectedRequest(ZoomError):
    reason = FailureReason.ZOOM_REJECTED_REQUEST


class InvalidMeetingSpec(ZoomRejectedRequest, ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message, attempts=0)
