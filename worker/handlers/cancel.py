"""Cancel the event's meeting: the event was deleted or no longer wants Zoom."""

from __future__ import annotations

from typing import assert_never

from schemas import LinkedAction
from worker.handlers.base import Applied, Step, delete_meeting, find_crashed_creates
from worker.pipeline.decision import Cancel, HostedMeeting, UnfinishedCreate


async def cancel(decision: Cancel, step: Step) -> Applied:
    """Delete everything the event holds on Zoom, each meeting with its own host's token."""
    link = step.base_link()
    cancelled: list[HostedMeeting] = []
    for target in decision.targets:
        match target:
            case HostedMeeting():
                await delete_meeting(step, target)  # already gone counts as cancelled
                cancelled.append(target)
            case UnfinishedCreate():
                for found in await find_crashed_creates(step, target, link):
                    await delete_meeting(step, found.meeting)
                    cancelled.append(found.meeting)
            case _:
                assert_never(target)
    step.crash.reached("after_zoom")
    first = cancelled[0] if cancelled else None  # the meeting results named so far
    done = link.evolve(
        state="deleted" if decision.deleted else "cancelled",
        join_url=None,
        creating_since=None,
        zoom_meeting_id=first.meeting_id if first else link.zoom_meeting_id,
        host_user_id=first.host if first else link.host_user_id,
        replaced_meeting_id=None,
        replaced_host_user_id=None,
    )
    return Applied(done, LinkedAction.CANCELLED if cancelled else None)
