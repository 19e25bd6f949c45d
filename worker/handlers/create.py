"""Create the event's meeting, or adopt the one a crashed attempt already made."""

from __future__ import annotations

from schemas import LinkedAction
from worker.handlers.base import (
    Applied,
    Step,
    create_meeting,
    delete_meeting,
    find_crashed_creates,
    update_meeting,
    with_meeting,
)
from worker.pipeline.decision import Create, HostedMeeting, UnfinishedCreate, Wanted
from worker.pipeline.links import Link, MeetingTaken
from worker.zoom.models import Meeting, MeetingPatch


async def create(decision: Create, step: Step) -> Applied:
    link = step.base_link()
    intent, meeting = await make_meeting(step, link, decision.wanted, recover=decision.recover)
    return Applied(
        with_meeting(intent, meeting, decision.wanted, step.organizer), LinkedAction.CREATED
    )


async def make_meeting(
    step: Step,
    link: Link,
    wanted: Wanted,
    *,
    recover: bool,
    replacing: HostedMeeting | None = None,
) -> tuple[Link, Meeting]:
    """The organizer's meeting for ``wanted`` and the intent it was made under.

    ``recover``: the organizer's own crashed attempt (the intent ``link`` stores) may have made
    it; adopt that one. Otherwise the intent is stored before Zoom is called, with ``replacing``
    (a handover's earlier meeting, still to cancel) so that a crash from here on still knows it.
    """
    if recover:
        adopted = await _adopt(step, link, wanted)
        if adopted is not None:
            return link, adopted
    intent = link.evolve(
        state="creating",
        host_user_id=step.organizer,
        title=wanted.topic,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
        agenda_digest=wanted.agenda_digest,
        creating_since=link.creating_since if recover else step.now(),
        replaced_meeting_id=replacing.meeting_id if replacing else None,
        replaced_host_user_id=replacing.host if replacing else None,
    )
    # Durable before Zoom is called: a crash after Zoom's answer is then found on redelivery.
    await step.session.save(intent)
    step.crash.reached("after_intent")
    meeting = await create_meeting(step, wanted)
    step.crash.reached("after_zoom")
    return intent, meeting


async def _adopt(step: Step, intent: Link, wanted: Wanted) -> Meeting | None:
    """Reuse the oldest meeting a crashed attempt made, delete any extra, bring it up to date.

    The meeting is claimed before it is touched: the intent is stored naming it. When another
    event's link names it by then (``MeetingTaken``; only a worker that does not hold the host's
    creates could have got there first), it is not ours: neither patched nor deleted, and the
    next one is tried; with none left, the caller creates one.
    """
    # Recovery is decided only for the organizer's own intent: the meetings are theirs.
    found = await find_crashed_creates(step, UnfinishedCreate(step.organizer), intent)
    for n, candidate in enumerate(found):
        claim = intent.evolve(
            zoom_meeting_id=candidate.summary.id, zoom_host_id=candidate.summary.host_id
        )
        try:
            await step.session.save(claim)
        except MeetingTaken:
            continue
        keep, extras = candidate, found[n + 1 :]
        break
    else:
        return None
    for extra in extras:
        await delete_meeting(step, extra.meeting)
    patch = MeetingPatch(
        topic=wanted.topic,
        agenda=wanted.agenda,
        start_time=wanted.start_time,
        duration_minutes=wanted.duration_minutes,
        timezone=wanted.timezone,
    )
    await update_meeting(step, keep.meeting, patch)
    return Meeting(
        id=keep.summary.id,
        join_url=keep.summary.join_url,
        password=None,
        topic=wanted.topic,
        start_time=wanted.start_time,
        duration=wanted.duration_minutes,
        timezone=wanted.timezone,
        host_id=keep.summary.host_id,
        created_at=keep.summary.created_at,
    )
