"""Zoom's meeting webhooks, read into one shape: which meeting, what happened, when.

What Zoom sends (Meetings webhook events; the app subscribes to these four):

- ``meeting.updated``: ``payload.object`` holds the meeting ``id`` and only the fields that
  changed, with their new values (``topic``, ``start_time``, ``duration``, ``timezone``,
  ``agenda``, ``settings``...); ``payload.old_object`` the same fields' earlier values;
  ``payload.operator``/``operator_id`` who made the change (for a user-level OAuth app, the
  host's own Zoom user whether the host or the worker acting for them did it).
- ``meeting.deleted``, ``meeting.started``, ``meeting.ended``: ``payload.object`` holds the
  meeting (``id``, ``uuid``, ``host_id``, ``topic``, ``start_time``...). A change to one
  occurrence of a recurring meeting names it in ``object.occurrences``; the worker's meetings
  are never recurring, so such a change is read but never acted on.
- The body's ``event_ts`` (Unix milliseconds) is when it happened; Zoom's retries of one event
  repeat it (and the whole body), each signed anew.

``read`` raises ``WebhookMalformed`` (400) for a signed body that is not such an event: no
meeting id, no event time, a reported field of the wrong type. Text Zoom reports is kept
within the contract's limits: control characters become spaces, a topic is cut at 200
characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connect.errors import WebhookMalformed
from connect.webhook import WebhookEvent

MeetingEventKind = Literal["meeting.updated", "meeting.deleted", "meeting.started", "meeting.ended"]
MEETING_EVENTS: Final[frozenset[str]] = frozenset(get_args(MeetingEventKind))

TOPIC_MAX: Final = 200
TIMEZONE_MAX: Final = 64
_INT64_MAX: Final = 2**63 - 1
_CONTROLS = re.compile(r"[\u0000-\u001f\u007f]")


@dataclass(frozen=True)
class Reported:
    """The meeting fields the calendar shows, as Zoom reported them; ``None``: not reported
    (for ``meeting.updated``: unchanged). Other fields (agenda, settings...) are not read."""

    topic: str | None = None
    start_time: datetime | None = None
    duration: int | None = None
    timezone: str | None = None

    @property
    def fields(self) -> dict[str, object]:
        """The reported ones, by their ``meeting.changed`` names."""
        named = {
            "topic": self.topic,
            "start_time": self.start_time,
            "duration": self.duration,
            "timezone": self.timezone,
        }
        return {name: value for name, value in named.items() if value is not None}


@dataclass(frozen=True)
class ZoomMeetingEvent:
    kind: MeetingEventKind
    meeting_id: int
    event_ts: int  # Unix milliseconds: when it happened on Zoom
    host_id: str | None  # object.host_id, the meeting's Zoom host, when Zoom sends it
    reported: Reported
    occurrence: bool  # about one occurrence of a recurring meeting only

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.event_ts / 1000, UTC)


def read(event: WebhookEvent) -> ZoomMeetingEvent:
    """``event`` (one of ``MEETING_EVENTS``) as a ``ZoomMeetingEvent``."""
    if event.event not in MEETING_EVENTS:
        raise WebhookMalformed
    kind: MeetingEventKind = event.event  # type: ignore[assignment]
    meeting = event.payload.get("object")
    if not isinstance(meeting, dict):
        raise WebhookMalformed
    event_ts = event.event_ts or _positive(event.payload.get("time_stamp"))
    if event_ts is None:
        raise WebhookMalformed
    host_id = meeting.get("host_id")
    if host_id is not None and (not isinstance(host_id, str) or not 0 < len(host_id) <= 200):
        raise WebhookMalformed
    return ZoomMeetingEvent(
        kind=kind,
        meeting_id=_meeting_id(meeting.get("id")),
        event_ts=event_ts,
        host_id=host_id,
        reported=_reported(meeting),
        occurrence=bool(meeting.get("occurrences")) or bool(meeting.get("occurrence_id")),
    )


def _positive(value: object) -> int | None:
    if type(value) is int and 0 < value <= _INT64_MAX:
        return value
    return None


def _meeting_id(value: object) -> int:
    # Zoom's meeting ids are int64 numbers; a few older payloads spell them as digit strings.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    found = _positive(value)
    if found is None:
        raise WebhookMalformed
    return found


def _reported(meeting: dict[str, Any]) -> Reported:
    timezone = _text(meeting.get("timezone"), TIMEZONE_MAX, strict=True)
    return Reported(
        topic=_text(meeting.get("topic"), TOPIC_MAX),
        start_time=_start_time(meeting.get("start_time"), timezone),
        duration=_duration(meeting.get("duration")),
        timezone=timezone,
    )


def _text(value: object, limit: int, *, strict: bool = False) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WebhookMalformed
    if strict:
        if not 0 < len(value) <= limit or _CONTROLS.search(value):
            raise WebhookMalformed
        return value
    return _CONTROLS.sub(" ", value)[:limit]


def _duration(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= 10**6:
        raise WebhookMalformed
    return value


def _start_time(value: object, timezone: str | None) -> datetime | None:
    """Zoom writes ``2026-12-01T15:00:00Z``; a time without an offset is read in the meeting's
    time zone (when it reports one), as Zoom's API reads it."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise WebhookMalformed
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise WebhookMalformed from None
    if parsed.tzinfo is None:
        try:
            parsed = parsed.replace(tzinfo=ZoneInfo(timezone) if timezone else UTC)
        except (ZoneInfoNotFoundError, ValueError):
            raise WebhookMalformed from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise WebhookMalformed from None
