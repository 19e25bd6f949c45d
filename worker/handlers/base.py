"""What every handler receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import LinkedAction, SourceEvent
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.decision import Wanted
from worker.pipeline.links import Link, LinkSession
from worker.pipeline.ports import Clock, Meetings
from worker.zoom.models import Meeting, MeetingSpec, MeetingSummary

# A crashed create is looked for among meetings created since its intent, minus clock skew.
RECOVERY_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Step:
    event: SourceEvent
    link: Link | None
    session: LinkSession
    meetings: Meetings
    now: Clock
    crash: CrashPoints

    @property
    def user_id(self) -> str:
        return self.event.organizer.user_id

    def base_link(self) -> Link:
        return self.link or Link(self.event.event_id, self.user_id, "none", -1)


@dataclass(frozen=True)
class Applied:
    link: Link  # to store (the processor adds the revision and result bookkeeping)
    action: LinkedAction | None  # None: nothing to publish


def spec_of(wanted: Wanted) -> MeetingSpec:
    return MeetingSpec(
        topic=wanted.topic,
        agenda=wanted.agenda,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
    )


def with_meeting(link: Link, meeting: Meeting, wanted: Wanted) -> Link:
    return link.evolve(
        state="linked",
        zoom_meeting_id=meeting.id,
        zoom_host_id=meeting.host_id,
        join_url=meeting.join_url,
        title=wanted.topic,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
        agenda_digest=wanted.agenda_digest,
        creating_since=None,
    )


async def find_crashed_creates(step: Step, intent: Link) -> list[MeetingSummary]:
    """Meetings a crashed attempt made for this intent, oldest first."""
    if intent.creating_since is None or intent.start_time is None:
        return []
    since = intent.creating_since - RECOVERY_SKEW
    found = [
        m
        for m in await step.meetings.list_scheduled_meetings(step.user_id)
        if m.topic == intent.title
        and m.start_time is not None
        and m.start_time == intent.start_time
        and (m.created_at is None or m.created_at >= since)
    ]
    return sorted(found, key=lambda m: (m.created_at or since, m.id))


def now_utc(clock: Clock) -> datetime:
    return clock()
