"""Create the event's meeting, or adopt the one a crashed attempt already made."""

from __future__ import annotations

import contextlib

from schemas import LinkedAction
from worker.handlers.base import Applied, Step, find_crashed_creates, spec_of, with_meeting
from worker.pipeline.decision import Create, Wanted
from worker.pipeline.links import Link
from worker.zoom.errors import MeetingNotFound
from worker.zoom.models import Meeting, MeetingPatch


async def create(decision: Create, step: Step) -> Applied:
    link = step.base_link()
    if decision.recover:
        adopted = await _adopt(step, link, decision.wanted)
        if adopted is not None:
            return adopted
    intent = link.evolve(
        state="creating",
        title=decision.wanted.topic,
        start_time=decision.wanted.start_time,
        duration_minutes=decision.wanted.duration_minutes,
        timezone=decision.wanted.timezone,
        agenda_digest=decision.wanted.agenda_digest,
        creating_since=link.creating_since if decision.recover else step.now(),
    )
    # Durable before Zoom is called: a crash after Zoom's answer is then found on redelivery.
    await step.session.save(intent)
    step.crash.reached("after_intent")
    meeting = await step.meetings.create_meeting(step.user_id, spec_of(decision.wanted))
    step.crash.reached("after_zoom")
    return Applied(with_meeting(intent, meeting, decision.wanted), LinkedAction.CREATED)


async def _adopt(step: Step, intent: Link, wanted: Wanted) -> Applied | None:
    """Reuse the oldest meeting a crashed attempt made, delete any extra, bring it up to date."""
    found = await find_crashed_creates(step, intent)
    if not found:
        return None
    keep, extras = found[0], found[1:]
    for extra in extras:
        with contextlib.suppress(MeetingNotFound):
            await step.meetings.delete_meeting(step.user_id, extra.id)
    patch = MeetingPatch(
        topic=wanted.topic,
        agenda=wanted.agenda,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
    )
    await step.meetings.update_meeting(step.user_id, keep.id, patch)
    meeting = Meeting(
        id=keep.id,
        join_url=keep.join_url,
        password=None,
        topic=wanted.topic,
        start_time=wanted.start_time,
        duration=wanted.duration_minutes,
        timezone=wanted.timezone,
        host_id=keep.host_id,
        created_at=keep.created_at,
    )
    return Applied(with_meeting(intent, meeting, wanted), LinkedAction.CREATED)
