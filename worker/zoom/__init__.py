"""Zoom's Meetings API: the client, its rate limiter, values and errors."""

from worker.zoom.client import ZoomMeetings
from worker.zoom.errors import (
    InvalidMeetingSpec,
    MeetingNotFound,
    NotMeetingHost,
    ZoomAccountInactive,
    ZoomAuthorizationRejected,
    ZoomDailyLimitReached,
    ZoomError,
    ZoomRateLimited,
    ZoomRejectedRequest,
    ZoomUnavailable,
)
from worker.zoom.models import Meeting, MeetingPatch, MeetingSpec, MeetingSummary
from worker.zoom.ratelimit import AccountRateLimiter, BucketConfig
from worker.zoom.tokens import AccessTokens

__all__ = [
    "AccessTokens",
    "AccountRateLimiter",
    "BucketConfig",
    "InvalidMeetingSpec",
    "Meeting",
    "MeetingNotFound",
    "MeetingPatch",
    "MeetingSpec",
    "MeetingSummary",
    "NotMeetingHost",
    "ZoomAccountInactive",
    "ZoomAuthorizationRejected",
    "ZoomDailyLimitReached",
    "ZoomError",
    "ZoomMeetings",
    "ZoomRateLimited",
    "ZoomRejectedRequest",
    "ZoomUnavailable",
]
