"""The functional core: what to do with one calendar message, given the stored link.

``decide`` is pure: no I/O, no clock. It compares the message's revision with what the link has
seen (revisions order messages across the three topics), and what the event wants (a Zoom
meeting or none) with what exists, and names one step. The handlers carry the step out.

A pending retry (``worker/pipeline/pending.py``) counts as seen: a message no newer than it is
answered with what the calendar was told about it, and only a newer revision replaces it.

A link belongs to its host. Every meeting a decision names comes with the Talivo user whose
token made it (``HostedMeeting``, from the link's stored host), and that is the only token the
handlers may use for it; the event's organizer is used only to create. When a revision names
another organizer than the host, the step is a ``Handover``. A link stored before hosts were
recorded (``host_user_id`` NULL) counts as hosted by the organizer of the message at hand.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

from schemas import EventDeleted, EventUpsert, SourceEvent
from worker.pipeline.links import Link
from worker.pipeline.pending import Answer, PendingRetry

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

    answer: Answer


@dataclass(frozen=True)
class Remember:
    """Nothing to do on Zoom and nothing to publish; remember the revision (a tombstone)."""

    link: Link
    why: str


@dataclass(frozen=True)
class HostedMeeting:
    """A meeting on Zoom and its host, the Talivo user whose token made it (and may touch it)."""

    meeting_id: int
    host: str


@dataclass(frozen=True)
class UnfinishedCreate:
    """A create by ``host`` that may have made a meeting before a crash or a lost answer.

    Looked for among ``host``'s meetings, with ``host``'s token, by the intent the link stores.
    """

    host: str


OnZoom = HostedMeeting | UnfinishedCreate


@dataclass(frozen=True)
class Create:
    """Create the organizer's meeting (nothing of another host is held)."""

    wanted: Wanted
    # The organizer's own crashed attempt may have made the meeting: look for it before creating.
    recover: bool


@dataclass(frozen=True)
class Update:
    wanted: Wanted
    meeting: HostedMeeting  # hosted by the event's organizer (else the step is a Handover)
    changed: frozenset[str]  # names of Wanted fields that differ from the stored meeting


@dataclass(frozen=True)
class Cancel:
    # Everything the event holds on Zoom, each with its host: the linked meeting, a handover's
    # replaced meeting, a create that may have been left unfinished. Empty never: then Remember.
    targets: tuple[OnZoom, ...]
    deleted: bool  # the event itself is gone (not just switched away from Zoom)


@dataclass(frozen=True)
class Handover:
    """The event names another organizer than the host: its meeting moves to the organizer.

    Make before break: ``abandoned`` (another host's unfinished create) is looked for and
    deleted with that host's token; the organizer's meeting is created with the organizer's
    token (``recover``: the organizer's own crashed attempt may have made it); then ``old`` is
    cancelled with its own host's token, or left on Zoom (and reported) when that host's
    connection no longer works.
    """

    wanted: Wanted
    old: HostedMeeting | None
    abandoned: UnfinishedCreate | None
    recover: bool


Decision = Republish | Remember | Create | Update | Cancel | Handover


def wanted_meeting(event: EventUpsert) -> Wanted:
    return Wanted(
        topic=event.title[:ZOOM_TOPIC_MAX],
        agenda=(event.description or "")[:ZOOM_AGENDA_MAX],
        start_time=event.start,
        duration_minutes=max(1, math.ceil((event.end - event.start).total_seconds() / 60)),
        timezone=event.timezone,
    )


def decide(event: SourceEvent, link: Link | None, pending: PendingRetry | None = None) -> Decision:
    """``pending``: the event's pending retry, unless ``event`` is that retry being run."""
    if pending is not None and event.revision <= pending.revision:
        return Republish(pending.answer)
    if link is not None and event.revision <= link.seen_revision:
        if link.answer is not None:
            return Republish(link.answer)
        return Remember(link, "stale")

    organizer = event.organizer.user_id
    held = _held(link, organizer)

    if isinstance(event, EventDeleted):
        if held.all:
            return Cancel(held.all, deleted=True)
        return Remember(_tombstone(event, link, "deleted"), "deleted without a meeting")

    if not event.wants_zoom:
        if held.all:
            return Cancel(held.all, deleted=False)
        return Remember(_tombstone(event, link, "none"), "not a Zoom event")

    wanted = wanted_meeting(event)
    current, unfinished, replaced = held.current, held.unfinished, held.replaced
    if current is not None and replaced is None:
        if current.host == organizer:
            assert link is not None
            return Update(wanted, current, changed_fields(link, wanted))
        return Handover(wanted, old=current, abandoned=None, recover=False)
    own = unfinished is not None and unfinished.host == organizer
    if replaced is None and (unfinished is None or own):
        return Create(wanted, recover=own)
    # An intent of another host's is stored, or a handover is under way (``replaced`` is only
    # ever stored beside an intent, never beside a linked meeting).
    return Handover(wanted, old=replaced, abandoned=None if own else unfinished, recover=own)


@dataclass(frozen=True)
class _Held:
    """What a link holds on Zoom, each piece with its host."""

    current: HostedMeeting | None  # the linked meeting
    unfinished: UnfinishedCreate | None  # a stored intent: a create that may have made one
    replaced: HostedMeeting | None  # a handover under way: the earlier host's meeting

    @property
    def all(self) -> tuple[OnZoom, ...]:
        # The linked or replaced meeting first: it is the one results named so far.
        return tuple(m for m in (self.current, self.replaced, self.unfinished) if m is not None)


def _held(link: Link | None, organizer: str) -> _Held:
    if link is None:
        return _Held(None, None, None)
    host = link.host_user_id or organizer  # NULL: stored before hosts were; see the module doc
    current = (
        HostedMeeting(link.zoom_meeting_id, host)
        if link.state == "linked" and link.zoom_meeting_id is not None
        else None
    )
    unfinished = UnfinishedCreate(host) if link.state == "creating" else None
    replaced = (
        HostedMeeting(link.replaced_meeting_id, link.replaced_host_user_id)
        if link.replaced_meeting_id is not None and link.replaced_host_user_id is not None
        else None
    )
    return _Held(current, unfinished, replaced)


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
