"""The functional core: what to do with one calendar message, given the stored link.

``decide`` is pure: no I/O, no clock. It compares the message's revision with what the link has
seen (revisions order messages across the three topics), and what the event wants (a Zoom
meeting or none) with what exists, and names one step. The handlers carry the step out.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

from schemas import EventDeleted, EventUpsert, SourceEvent
from worker.pipeline.links import Link

ZOOM_TOPIC_MAX = 200
ZOOM_AGENDA_MAX = 2000


@dataclass(frozen=True)
class Wanted:
    """The Zoom meeting an event wants, as the link stores it."""

    topic: str
    agenda: str
    start_time: datetime
    duration_minutes: int
    timezone: str

    @property
    def agenda_digest(self) -> str:
        return hashlib.sha256(self.agenda.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Republish:
    """Stale or redelivered: change nothing, publish the stored result again."""

    link: Link


@dataclass(frozen=True)
class Remember:
    """Nothing to do on Zoom and nothing to publish; remember the revision (a tombstone)."""

    link: Link
    why: str


@dataclass(frozen=True)
class Create:
    wanted: Wanted
    # A crashed attempt may have made the meeting already: look for it before creating.
    recover: bool


@dataclass(frozen=True)
class Update:
    wanted: Wanted
    meeting_id: int
    changed: frozenset[str]  # names of Wanted fields that differ from the stored meeting


@dataclass(frozen=True)
class Cancel:
    meeting_id: int | None  # None: a crashed create may have made one; look for it
    deleted: bool  # the event itself is gone (not just switched away from Zoom)


Decision = Republish | Remember | Create | Update | Cancel


def wanted_meeting(event: EventUpsert) -> Wanted:
    return Wanted(
        topic=event.title[:ZOOM_TOPIC_MAX],
        agenda=(event.description or "")[:ZOOM_AGENDA_MAX],
        start_time=event.start,
        duration_minutes=max(1, math.ceil((event.end - event.start).total_seconds() / 60)),
        timezone=event.timezone,
    )


def decide(event: SourceEvent, link: Link | None) -> Decision:
    if link is not None and event.revision <= link.seen_revision:
        if link.last_result is not None:
            return Republish(link)
        return Remember(link, "stale")

    if isinstance(event, EventDeleted):
        if link is not None and link.state == "linked":
            return Cancel(link.zoom_meeting_id, deleted=True)
        if link is not None and link.state == "creating":
            return Cancel(None, deleted=True)
        return Remember(_tombstone(event, link, "deleted"), "deleted without a meeting")

    if not event.wants_zoom:
        if link is not None and link.state == "linked":
            return Cancel(link.zoom_meeting_id, deleted=False)
        if link is not None and link.state == "creating":
            return Cancel(None, deleted=False)
        return Remember(_tombstone(event, link, "none"), "not a Zoom event")

    wanted = wanted_meeting(event)
    if link is not None and link.state == "linked" and link.zoom_meeting_id is not None:
        return Update(wanted, link.zoom_meeting_id, changed_fields(link, wanted))
    return Create(wanted, recover=link is not None and link.state == "creating")


def changed_fields(link: Link, wanted: Wanted) -> frozenset[str]:
    stored = {
        "topic": link.title,
        "agenda": link.agenda_digest,
        "start_time": link.start_time,
        "duration_minutes": link.duration_minutes,
        "timezone": link.timezone,
    }
    new = {
        "topic": wanted.topic,
        "agenda": wanted.agenda_digest,
        "start_time": wanted.start_time,
        "duration_minutes": wanted.duration_minutes,
        "timezone": wanted.timezone,
    }
    return frozenset(name for name, value in new.items() if stored[name] != value)


def _tombstone(event: SourceEvent, link: Link | None, state: str) -> Link:
    base = link or Link(event.event_id, event.organizer.user_id, "none", -1)
    return base.evolve(
        state="deleted"
        if state == "deleted"
        else "cancelled"
        if base.state == "cancelled"
        else "none",
        seen_revision=event.revision,
        last_message_id=event.message_id,
        last_result=None,
        last_result_topic=None,
    )
