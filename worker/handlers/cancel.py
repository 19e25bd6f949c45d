"""Cancel the event's meeting: the event was deleted or no longer wants Zoom."""

from __future__ import annotations

import contextlib

from schemas import LinkedAction
from worker.handlers.base import Applied, Step, find_crashed_creates
from worker.pipeline.decision import Cancel
from worker.zoom.errors import MeetingNotFound


async def cancel(decision: Cancel, step: Step) -> Applied:
    link = step.base_link()
    targets = (
        [decision.meeting_id]
        if decision.meeting_id is not None
        else [m.id for m in await find_crashed_creates(step, link)]
    )
    for meeting_id in targets:
        # Already gone on Zoom (deleted by hand) is what we wanted.
        with contextlib.suppress(MeetingNotFound):
            await step.meetings.delete_meeting(step.user_id, meeting_id)
    step.crash.reached("after_zoom")
    done = link.evolve(
        state="deleted" if decision.deleted else "cancelled",
        join_url=None,
        creating_since=None,
        zoom_meeting_id=targets[0] if targets else link.zoom_meeting_id,
    )
    return Applied(done, LinkedAction.CANCELLED if targets else None)
