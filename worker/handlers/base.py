"""What every handler receives and returns, and the only ways a handler reaches Zoom.

A link belongs to its host. A meeting that exists is named by a ``HostedMeeting`` (the decision
builds it from the link's stored host, or a handler from the create that made it), and
``update_meeting`` and ``delete_meeting`` take nothing else, so no call about a meeting can carry
another user's token. Only ``create_meeting`` uses the event's organizer; crash recovery looks
among the meetings of the ``UnfinishedCreate``'s host. Handlers never call ``Step.meetings``
directly (``tests/worker/test_handover.py`` checks).

A meeting belongs to at most one event. Zoom cannot say which event a meeting was made for (two
events booked alike, "twins", get meetings it cannot tell apart), so the worker makes sure that
the meetings crash recovery finds are all leftovers of crashed creates: ``create_meeting`` and
``find_crashed_creates`` hold the host's creates (``LinkSession.hold_creates``) until the guard
ends, by which time the link naming the new or adopted meeting is stored, and recovery skips
every meeting another event's link names. A leftover may be a twin's rather than this event's own;
adopting or deleting it is still right, since the twin's own recovery then finds it gone and
creates anew. The unique index on ``event_links.zoom_meeting_id`` backs this up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from structlog.stdlib import get_logger

from schemas import LinkedAction, ReplacedMeeting, SourceEvent
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.decision import HostedMeeting, UnfinishedCreate, Wanted
from worker.pipeline.links import Link, LinkSession
from worker.pipeline.ports import Clock, Meetings
from worker.zoom.errors import MeetingNotFound
from worker.zoom.models import Meeting, MeetingPatch, MeetingSpec, MeetingSummary

log = get_logger("worker.handlers")

# A crashed create is looked for among meetings created since its intent, minus clock skew.
RECOVERY_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Step:
    event: SourceEvent
    link: Link | None
    session: LinkSession
    meetings: Meetings  # reach it through the functions below, never directly
    now: Clock
    crash: CrashPoints

    @property
    def organizer(self) -> str:
        """The event's organizer: the host of a meeting this step creates, of no other."""
        return self.event.organizer.user_id

    def base_link(self) -> Link:
        return self.link or Link(self.event.event_id, self.organizer, "none", -1)


@dataclass(frozen=True)
class Applied:
    link: Link  # to store (the processor adds the revision and result bookkeeping)
    action: LinkedAction | None  # None: nothing to publish
    replaced: ReplacedMeeting | None = None  # a handover: what became of the earlier meeting


def spec_of(wanted: Wanted) -> MeetingSpec:
    return MeetingSpec(
        topic=wanted.topic,
        agenda=wanted.agenda,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
    )


def with_meeting(link: Link, meeting: Meeting, wanted: Wanted, host: str) -> Link:
    """``link`` linked to ``meeting``, which ``host``'s token made; no handover under way."""
    return link.evolve(
        state="linked",
        zoom_meeting_id=meeting.id,
        zoom_host_id=meeting.host_id,
        host_user_id=host,
        join_url=meeting.join_url,
        title=wanted.topic,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
        agenda_digest=wanted.agenda_digest,
        creating_since=None,
        replaced_meeting_id=None,
        replaced_host_user_id=None,
    )


async def hold_creates(step: Step, hosts: Iterable[str]) -> None:
    """Hold these hosts' creates until the guard ends: for a step that needs several hosts'
    (take them all at once; ``create_meeting`` and ``find_crashed_creates`` take their own)."""
    await step.session.hold_creates(hosts)


async def create_meeting(step: Step, wanted: Wanted) -> Meeting:
    """A new meeting for ``wanted``, with the token of the event's organizer, who hosts it.

    The organizer's creates are held from here until the guard ends: no other event's recovery
    can take the new meeting for a leftover before this event's link names it.
    """
    await step.session.hold_creates((step.organizer,))
    return await step.meetings.create_meeting(step.organizer, spec_of(wanted))


async def update_meeting(step: Step, meeting: HostedMeeting, patch: MeetingPatch) -> None:
    """Patch ``meeting`` with its host's token; ``MeetingNotFound`` when it is gone."""
    await step.meetings.update_meeting(meeting.host, meeting.meeting_id, patch)


async def delete_meeting(step: Step, meeting: HostedMeeting) -> None:
    """Delete ``meeting`` with its host's token; one already gone (by hand) is what we wanted."""
    with contextlib.suppress(MeetingNotFound):
        await step.meetings.delete_meeting(meeting.host, meeting.meeting_id)


async def abandon(step: Step, applied: Applied) -> None:
    """The step made a meeting but lost its event's lease before storing it (the worker stalled
    and another took the event over): delete that meeting, unless another link names it by now
    (the new holder adopted it), so it is not left on Zoom. Best effort: failures are logged."""
    meeting_id, host = applied.link.zoom_meeting_id, applied.link.host_user_id
    if applied.action is not LinkedAction.CREATED or meeting_id is None or host is None:
        return
    try:
        if meeting_id in await step.session.linked_elsewhere([meeting_id]):
            return
        await delete_meeting(step, HostedMeeting(meeting_id, host))
        log.warning(
            "abandoned_meeting_deleted", event_id=step.event.event_id, meeting_id=meeting_id
        )
    except Exception as exc:
        log.error(
            "abandoned_meeting_left",
            event_id=step.event.event_id,
            meeting_id=meeting_id,
            error=type(exc).__name__,
        )


@dataclass(frozen=True)
class Found:
    """A meeting a crashed create made: hosted by the create's host, as Zoom lists it."""

    meeting: HostedMeeting
    summary: MeetingSummary


async def find_crashed_creates(
    step: Step, unfinished: UnfinishedCreate, intent: Link
) -> list[Found]:
    """Meetings a crashed attempt made for ``intent``, oldest first, listed with the token of
    the host whose create it was: the host's meetings that match the intent (title, start, made
    since it), but for those another event's link names.

    The host's creates are held from here until the guard ends, so none of these is a meeting
    another event is making right now: each is a crashed create's, this event's or a twin's.
    """
    if intent.creating_since is None or intent.start_time is None:
        return []
    await step.session.hold_creates((unfinished.host,))
    since = intent.creating_since - RECOVERY_SKEW
    matching = [
        m
        for m in await step.meetings.list_scheduled_meetings(unfinished.host)
        if m.topic == intent.title
        and m.start_time is not None
        and m.start_time == intent.start_time
        and (m.created_at is None or m.created_at >= since)
    ]
    taken = await step.session.linked_elsewhere([m.id for m in matching])
    found = [m for m in matching if m.id not in taken]
    found.sort(key=lambda m: (m.created_at or since, m.id))
    return [Found(HostedMeeting(m.id, unfinished.host), m) for m in found]


def now_utc(clock: Clock) -> datetime:
    return clock()
