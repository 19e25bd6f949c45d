"""What a Zoom meeting webhook means for the calendar: the functional core (no I/O, no clock).

``decide`` takes Zoom's event and the link that names its meeting, read under the event's
lease (``connect.meeting_links``), and returns either ``Publish`` (a ``meeting.changed`` message and
what to store in the link) or ``Ignore`` (why). The rules, in order:

1. No link names the meeting (never ours, or the worker has since replaced or unlinked it):
   ``unknown_meeting``. A change to one occurrence of a recurring meeting: ``occurrence`` (the
   worker makes none).
2. The meeting's host (the Talivo user whose Zoom connection made it) is no longer connected,
   or is connected to another Zoom user than the one Zoom names as the meeting's host:
   ``not_connected``.
3. The link no longer holds the meeting as its own (``state`` is not ``linked``): a delete then
   is the worker's own cancel coming back (``echo``); anything else ``not_linked``.
4. This Zoom event was published before (the same ``message_id``: a retry of a delivery whose
   answer Zoom did not get): ``duplicate``.
5. ``meeting.updated``: only topic, start, duration and time zone count (the calendar shows
   those; agenda and settings changes are ``not_tracked``). When every such field Zoom reports
   equals what the link stores, it is the worker's own update coming back (the worker stores
   what it sent, under the same lease, before the webhook can be read): ``echo``. A change from
   before the worker's last write of the link is ``superseded``: the worker wrote it after the
   change, and its own later update (if it made one) comes back as its own webhook. A field a
   newer host change already set keeps that change's value (Zoom's events may come out of
   order, a retry over an hour late); when that leaves nothing to change, ``superseded`` too.
   Otherwise
   ``updated_on_zoom`` with the meeting as Zoom now has it, and the link stores Zoom's values,
   so the next calendar revision is compared with what is really on Zoom.
6. ``meeting.deleted``: ``deleted_on_zoom``; the link keeps no meeting (state ``none``), so the
   next revision of the event that wants Zoom creates a new one (``decide`` in the worker:
   nothing held, so ``Create``).
7. ``meeting.started`` / ``meeting.ended``: ``started`` / ``ended``; the link is unchanged.

The ``message_id`` is a UUIDv5 of Zoom's event name, the meeting id and ``event_ts``, which
Zoom's retries repeat: a retry can only ever publish the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from connect.meeting_events import ZoomMeetingEvent
from schemas import ChangedMeeting, MeetingChange, MeetingChanged
from schemas.changes import CHANGED_FIELDS, ChangedField

_NAMESPACE: Final = uuid.UUID("8c1d7f3e-5a92-4b6e-9d04-3e7a1f2c6b58")

MESSAGE_TYPE: Final = "meeting.changed"
"""The AsyncAPI message name, whatever the topic is called (``TOPIC_MEETING_CHANGED``)."""

Why = Literal[
    "unknown_meeting", "occurrence", "not_connected", "echo", "not_linked", "duplicate",
    "not_tracked", "superseded",
]  # fmt: skip


@dataclass(frozen=True)
class LinkView:
    """What the connect side reads of one event's link (``event_links``) and its host's
    connection (``zoom_tokens``)."""

    event_id: str
    state: str  # 'none', 'creating', 'linked', 'cancelled', 'deleted'
    seen_revision: int
    zoom_meeting_id: int | None
    host_user_id: str  # the link's host, or its organizer for links stored before hosts were
    title: str | None
    start_time: datetime | None
    duration_minutes: int | None
    timezone: str | None
    updated_at: datetime  # the worker's last write of the link (ours leave it as it was)
    connected_zoom_user_id: str | None  # the host's Zoom connection; None: not connected
    # Per field (meeting.changed names), when the newest host change stored in the link that
    # changed it happened on Zoom.
    zoom_field_times: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Moved:
    """Store the meeting as Zoom now has it."""

    title: str
    start_time: datetime
    duration_minutes: int
    timezone: str | None


@dataclass(frozen=True)
class Unlinked:
    """The meeting is gone from Zoom: the link keeps none (state ``none``)."""


LinkChange = Moved | Unlinked


@dataclass(frozen=True)
class Publish:
    message: MeetingChanged
    store: LinkChange | None


@dataclass(frozen=True)
class Ignore:
    why: Why


Decision = Publish | Ignore

_CHANGES: Final[dict[str, MeetingChange]] = {
    "meeting.updated": MeetingChange.UPDATED_ON_ZOOM,
    "meeting.deleted": MeetingChange.DELETED_ON_ZOOM,
    "meeting.started": MeetingChange.STARTED,
    "meeting.ended": MeetingChange.ENDED,
}


def message_id(event: ZoomMeetingEvent) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{event.kind}/{event.meeting_id}/{event.event_ts}"))


def decide(event: ZoomMeetingEvent, link: LinkView | None, *, published_before: bool) -> Decision:
    """``published_before``: a ``meeting.changed`` with ``message_id(event)`` went out already."""
    if link is None or link.zoom_meeting_id != event.meeting_id:
        return Ignore("unknown_meeting")
    if event.occurrence:
        return Ignore("occurrence")
    connected = link.connected_zoom_user_id
    if connected is None or (event.host_id is not None and event.host_id != connected):
        return Ignore("not_connected")
    if link.state != "linked":
        gone = event.kind == "meeting.deleted" and link.state in ("cancelled", "deleted")
        return Ignore("echo" if gone else "not_linked")
    if published_before:
        return Ignore("duplicate")
    if event.kind == "meeting.updated":
        return _updated(event, link)
    store: LinkChange | None = Unlinked() if event.kind == "meeting.deleted" else None
    return Publish(_message(event, link, ChangedMeeting(id=event.meeting_id), None), store)


def _updated(event: ZoomMeetingEvent, link: LinkView) -> Decision:
    reported = event.reported.fields
    if not reported:
        return Ignore("not_tracked")
    stored: dict[str, object] = {
        "topic": link.title,
        "start_time": link.start_time,
        "duration": link.duration_minutes,
        "timezone": link.timezone,
    }
    if all(stored[name] == value for name, value in reported.items()):
        return Ignore("echo")
    if event.occurred_at < link.updated_at:
        return Ignore("superseded")
    # A field a newer host change already set keeps that change's value.
    times = link.zoom_field_times
    fresh = {
        name: value
        for name, value in reported.items()
        if name not in times or event.occurred_at > times[name]
    }
    changed: tuple[ChangedField, ...] = tuple(
        name for name in CHANGED_FIELDS if name in fresh and fresh[name] != stored[name]
    )
    if not changed:
        return Ignore("superseded")
    now = stored | fresh
    topic, start, duration, timezone = (
        now["topic"], now["start_time"], now["duration"], now["timezone"],
    )  # fmt: skip
    if not (isinstance(topic, str) and isinstance(start, datetime) and isinstance(duration, int)):
        return Ignore("not_linked")  # a linked meeting always has them stored: never here
    zone = timezone if isinstance(timezone, str) else None
    meeting = ChangedMeeting(
        id=event.meeting_id, topic=topic, start_time=start, duration=duration, timezone=zone
    )
    return Publish(_message(event, link, meeting, changed), Moved(topic, start, duration, zone))


def _message(
    event: ZoomMeetingEvent,
    link: LinkView,
    meeting: ChangedMeeting,
    changed: tuple[ChangedField, ...] | None,
) -> MeetingChanged:
    return MeetingChanged(
        message_id=message_id(event),
        event_id=link.event_id,
        revision=max(0, link.seen_revision),
        organizer_user_id=link.host_user_id,
        change=_CHANGES[event.kind],
        meeting=meeting,
        changed=changed,
        occurred_at=event.occurred_at,
    )
