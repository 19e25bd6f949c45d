"""Bring the linked meeting in line with the event, patching only what changed."""

from __future__ import annotations

from dataclasses import replace

from schemas import LinkedAction
from worker.handlers.base import Applied, Step, update_meeting
from worker.handlers.create import create
from worker.pipeline.decision import Create, Update
from worker.pipeline.links import Link
from worker.zoom.errors import MeetingNotFound
from worker.zoom.models import MeetingPatch


async def update(decision: Update, step: Step) -> Applied:
    link = step.base_link()
    if decision.changed:
        wanted = decision.wanted
        fields = decision.changed
        patch = MeetingPatch(
            topic=wanted.topic if "topic" in fields else None,
            agenda=wanted.agenda if "agenda" in fields else None,
            start_time=wanted.start_time if fields & {"start_time", "timezone"} else None,
            duration_minutes=wanted.duration_minutes if "duration_minutes" in fields else None,
            timezone=wanted.timezone if fields & {"start_time", "timezone"} else None,
        )
        try:
            await update_meeting(step, decision.meeting, patch)
        except MeetingNotFound:
            # Deleted by hand on Zoom: the event still wants a meeting, so make a new one.
            gone = link.evolve(state="none", zoom_meeting_id=None, join_url=None)
            return await create(Create(wanted, recover=False), _with_link(step, gone))
        step.crash.reached("after_zoom")
    updated = link.evolve(
        host_user_id=decision.meeting.host,  # pins a host on a link stored before hosts were
        title=decision.wanted.topic,
        start_time=decision.wanted.start_time,
        duration_minutes=decision.wanted.duration_minutes,
        timezone=decision.wanted.timezone,
        agenda_digest=decision.wanted.agenda_digest,
    )
    return Applied(updated, LinkedAction.UPDATED)


def _with_link(step: Step, link: Link) -> Step:
    return replace(step, link=link)
