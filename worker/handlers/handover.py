"""Move the event's meeting to its new organizer: make theirs, then cancel the old one.

Make before break, each step durable or safe to repeat:

1. ``abandoned``: a create another host left unfinished (the organizer changed again before it
   finished) is looked for and deleted with that host's token;
2. the intent is stored: the organizer's create, with the old meeting and its host in
   ``replaced_*``, so a crash from here on still knows what to cancel (``after_intent``);
3. the organizer's meeting is created with the organizer's token, or adopted from their own
   crashed attempt (``after_zoom``);
4. the old meeting is deleted with its own host's token (``after_handover_cancel``);
5. the processor stores the link (the new meeting, nothing replaced) with the result, then
   publishes ``meeting.linked``: action ``created``, ``replaced_meeting`` saying what became of
   the old one (``after_db``, ``after_publish``).

A crash anywhere is redelivered into the same handover (the stored intent makes it recover,
not create twice) or, after step 5, republishes the stored result.

When the old host's connection no longer works (no connection stored, authorization expired,
account inactive, Zoom says they no longer host it: any permanent failure), the old meeting is
left on Zoom: the result (``cancelled: false`` and the reason), a warning log line and
``zoom_worker_handovers_total{outcome="old_left"}`` say so. No other token is ever tried.
Retryable trouble (Zoom or its OAuth unavailable, rate limits) fails the message retryably with
the intent kept, so a replay picks up where it stopped. When the organizer cannot get a
meeting (not connected, daily limit), nothing was made and the old meeting was not touched: the
processor keeps the old link and publishes ``meeting.failed``.
"""

from __future__ import annotations

from structlog.stdlib import get_logger

from schemas import LinkedAction, ReplacedMeeting
from worker.handlers.base import (
    Applied,
    Step,
    delete_meeting,
    find_crashed_creates,
    hold_creates,
    with_meeting,
)
from worker.handlers.create import make_meeting
from worker.pipeline import metrics
from worker.pipeline.decision import Handover, HostedMeeting, UnfinishedCreate
from worker.pipeline.failures import EXPECTED, classify
from worker.pipeline.links import Link

log = get_logger("worker.handlers.handover")


async def handover(decision: Handover, step: Step) -> Applied:
    link = step.base_link()
    if decision.abandoned is not None:
        # Both hosts' creates in one go (the organizer's for step 3), so two handovers between
        # the same two hosts take them in the same order.
        await hold_creates(step, (step.organizer, decision.abandoned.host))
        await _drop_unfinished(step, decision.abandoned, link)
    intent, meeting = await make_meeting(
        step, link, decision.wanted, recover=decision.recover, replacing=decision.old
    )
    replaced = await _retire(step, decision.old) if decision.old is not None else None
    step.crash.reached("after_handover_cancel")
    done = with_meeting(intent, meeting, decision.wanted, step.organizer)
    return Applied(done, LinkedAction.CREATED, replaced)


async def _retire(step: Step, old: HostedMeeting) -> ReplacedMeeting:
    """Cancel the earlier host's meeting with that host's token, or leave it and say why."""
    try:
        await delete_meeting(step, old)
    except EXPECTED as exc:
        failure = classify(exc, step.now())
        if failure.retryable:
            raise
        log.warning(
            "handover_old_meeting_left",
            event_id=step.event.event_id,
            revision=step.event.revision,
            meeting_id=old.meeting_id,
            old_host_user_id=old.host,
            new_host_user_id=step.organizer,
            reason=failure.reason.value,
            error=failure.detail,
        )
        metrics.HANDOVERS.labels("old_left").inc()
        return ReplacedMeeting(
            id=old.meeting_id, organizer_user_id=old.host, cancelled=False, reason=failure.reason
        )
    metrics.HANDOVERS.labels("old_cancelled").inc()
    return ReplacedMeeting(id=old.meeting_id, organizer_user_id=old.host, cancelled=True)


async def _drop_unfinished(step: Step, unfinished: UnfinishedCreate, intent: Link) -> None:
    """Delete what another host's unfinished create made, with that host's token, if it can."""
    try:
        for found in await find_crashed_creates(step, unfinished, intent):
            await delete_meeting(step, found.meeting)
    except EXPECTED as exc:
        failure = classify(exc, step.now())
        if failure.retryable:
            raise
        log.warning(
            "handover_unfinished_create_left",
            event_id=step.event.event_id,
            revision=step.event.revision,
            old_host_user_id=unfinished.host,
            reason=failure.reason.value,
            error=failure.detail,
        )
        metrics.HANDOVERS.labels("unfinished_left").inc()
