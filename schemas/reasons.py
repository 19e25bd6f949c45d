"""The closed set of reasons a ``meeting.failed`` carries.

Each has a sentence a recruiter can act on.
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    ZOOM_NOT_CONNECTED = "zoom_not_connected"
    ZOOM_AUTHORIZATION_EXPIRED = "zoom_authorization_expired"
    NOT_MEETING_HOST = "not_meeting_host"
    ZOOM_ACCOUNT_INACTIVE = "zoom_account_inactive"
    ZOOM_RATE_LIMITED = "zoom_rate_limited"
    ZOOM_DAILY_LIMIT_REACHED = "zoom_daily_limit_reached"
    ZOOM_UNAVAILABLE = "zoom_unavailable"
    ZOOM_REJECTED_REQUEST = "zoom_rejected_request"
    INVALID_EVENT = "invalid_event"
    PROCESSING_ERROR = "processing_error"

    @property
    def sentence(self) -> str:
        return SENTENCES[self]


SENTENCES: dict[FailureReason, str] = {
    FailureReason.ZOOM_NOT_CONNECTED: (
        "User has not authorized Zoom access. Connect Zoom in Settings > Integrations."
    ),
    FailureReason.ZOOM_AUTHORIZATION_EXPIRED: (
        "Your Zoom connection has expired. Reconnect Zoom in Settings > Integrations."
    ),
    FailureReason.NOT_MEETING_HOST: "Only the meeting host can modify or delete this meeting.",
    FailureReason.ZOOM_ACCOUNT_INACTIVE: (
        "Your Zoom account is inactive. Reactivate it in Zoom, then reconnect Zoom in Talivo."
    ),
    FailureReason.ZOOM_RATE_LIMITED: (
        "Zoom is limiting requests right now. The meeting will be retried; save the event again "
        "if the link does not appear within a few minutes."
    ),
    FailureReason.ZOOM_DAILY_LIMIT_REACHED: (
        "Your Zoom account reached its daily limit of meeting changes. Try again after 00:00 UTC."
    ),
    FailureReason.ZOOM_UNAVAILABLE: (
        "Zoom could not be reached. The meeting will be retried; save the event again if the "
        "link does not appear within a few minutes."
    ),
    FailureReason.ZOOM_REJECTED_REQUEST: (
        "Zoom rejected the meeting details. Check the event's title, time and time zone."
    ),
    FailureReason.INVALID_EVENT: (
        "The calendar event could not be read. Edit and save the event again, or contact support."
    ),
    FailureReason.PROCESSING_ERROR: (
        "Talivo could not sync this event with Zoom because of an error on our side. Save the "
        "event again in a few minutes; if the Zoom link still does not appear, contact support."
    ),
}
