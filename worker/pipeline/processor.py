"""The imperative shell around ``decide``: one calendar record in, one result out.

Order of side effects for a record, each durable before the next: the link guard is taken;
intent is stored before Zoom may create anything; Zoom is called; the link and the result are
stored together; the result is published; the caller (the engine) commits the offset. A crash
between any two of these is repaired on redelivery: the stored intent finds a meeting a crashed
create made, and a stored result is published again under the same ``message_id``. A link that
would name another event's meeting is refused (``MeetingTaken``); the attempt fails, and its
retry recovers from the intent still stored, leaving that meeting to the other event.

A failure that waiting may cure is retried by the worker itself (``worker/pipeline/pending.py``):
the first time, the link (as the step left it) and the event's pending retry are stored in one
statement and the calendar is told once (``meeting.failed``, ``retryable``, ``next_attempt_at``);
``retry`` runs it again when due (``worker/pipeline/retries.py`` calls it), under the same guard,
and only while it is still the event's pending retry. A later failure of the retry reschedules it
quietly; past the horizon the failure is final: published, and the record parked on the
dead-letter topic for ``zoom-worker dlq replay``, the link left as it was so a replay retries.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import assert_never

from structlog.stdlib import get_logger

from schemas import (
    ContractError,
    EventKind,
    FailureReason,
    SourceEvent,
    parse_event,
    salvage_ids,
)
from schemas.dead_letter import dead_letter_headers
from worker.engine.records import ConsumedRecord
from worker.handlers import Applied, Step, abandon, carry_out
from worker.leases import LeaseLost
from worker.pipeline import metrics, results
from worker.pipeline.admission import Admission
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.decision import (
    Cancel,
    Create,
    Decision,
    Handover,
    Remember,
    Republish,
    Update,
    decide,
)
from worker.pipeline.failures import EXPECTED, Failure, classify
from worker.pipeline.links import KEEP, Link, LinkSession, LinkStore
from worker.pipeline.pending import PendingRetry, RetryPolicy, ScheduledRetry
from worker.pipeline.ports import Clock, Meetings, Publisher
from worker.pipeline.results import result_message_id

log = get_logger("worker.pipeline.processor")


@dataclass(frozen=True)
class Topics:
    created: str
    updated: str
    deleted: str
    linked: str
    failed: str
    dead_letter: str

    def kind_of(self, topic: str) -> EventKind | None:
        kinds: dict[str, EventKind] = {
            self.created: "created",
            self.updated: "updated",
            self.deleted: "deleted",
        }
        return kinds.get(topic)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Processor:
    """A ``worker.engine.records.RecordHandler``: never raises for bad input or Zoom trouble."""

    def __init__(
        self,
        *,
        topics: Topics,
        links: LinkStore,
        meetings: Meetings,
        publisher: Publisher,
        clock: Clock = _utc_now,
        crash: CrashPoints | None = None,
        admission: Admission | None = None,
        retry_policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._topics = topics
        self._links = links
        self._meetings = meetings
        self._publisher = publisher
        self._clock = clock
        self._crash = crash or CrashPoints()
        self._admission = admission or Admission(active=64, per_organizer=8)
        self._retry_policy = retry_policy or RetryPolicy()
        self._rng = rng or random.Random()

    async def __call__(self, record: ConsumedRecord) -> None:
        started = time.monotonic()
        kind = self._topics.kind_of(record.topic)
        try:
            if kind is None:
                raise ContractError(None, f"topic {record.topic!r} is not an event topic")
            event = parse_event(kind, record.value or b"")
        except ContractError as err:
            await self._reject(record, kind, err)
            self._done(record, "invalid", started, reason=str(err))
            return
        async with (
            self._admission.slot(event.organizer.user_id),
            self._links.guard(event.event_id) as session,
        ):
            link = await session.get()
            decision = decide(event, link, await session.pending())
            outcome = await self._apply(record, event, link, decision, session, None)
        self._done(record, outcome, started, event=event, action=type(decision).__name__.lower())

    async def retry(self, scheduled: ScheduledRetry) -> str:
        """Run a pending retry again; its outcome, or ``superseded`` when it is no longer the
        event's pending retry (a newer revision replaced it, or another replica ran it).

        Blocks, raises and is cancelled like ``__call__``; the record's offset is long committed:
        until this stores an outcome the retry stays scheduled (and claimed, until its lease
        runs out)."""
        started = time.monotonic()
        record = scheduled.record
        kind = self._topics.kind_of(record.topic)
        assert kind is not None, "only event records are scheduled"
        event = parse_event(kind, record.value or b"")  # it was read once: it reads again
        async with (
            self._admission.slot(event.organizer.user_id),
            self._links.guard(event.event_id) as session,
        ):
            pending = await session.pending()
            if pending is None or not pending.same_as(scheduled.pending):
                outcome, action = "superseded", None
            else:
                link = await session.get()
                decision = decide(event, link)
                action = type(decision).__name__.lower()
                outcome = await self._apply(record, event, link, decision, session, pending)
        metrics.RETRIES_RUN.labels(outcome).inc()
        self._done(record, outcome, started, event=event, action=action, retry=True)
        return outcome

    async def _apply(
        self,
        record: ConsumedRecord,
        event: SourceEvent,
        link: Link | None,
        decision: Decision,
        session: LinkSession,
        pending: PendingRetry | None,
    ) -> str:
        """``pending``: the retry being run, None for a record from the broker."""
        match decision:
            case Republish():
                await self._republish(event, decision)
                if pending is not None:  # a retry whose outcome was stored, maybe not published
                    await session.unschedule(pending)
                return "stale"
            case Remember():
                if decision.link != link or pending is not None:
                    # a stale message changes nothing, not even a timestamp
                    await session.conclude(decision.link, None)
                return "skipped"
            case Create() | Update() | Cancel() | Handover():
                step = Step(event, link, session, self._meetings, self._clock, self._crash)
                try:
                    applied = await carry_out(decision, step)
                except EXPECTED as exc:
                    failure = classify(exc, self._clock())
                    if failure.retryable:
                        return await self._defer(record, event, decision, failure, session, pending)
                    await self._fail(record, event, link, decision, failure, session, pending)
                    return "failed"
                try:
                    await self._link(event, applied, session, pending)
                except LeaseLost:
                    await abandon(step, applied)
                    raise
                return "linked" if applied.action else "skipped"
            case _:
                assert_never(decision)

    async def _link(
        self,
        event: SourceEvent,
        applied: Applied,
        session: LinkSession,
        pending: PendingRetry | None,
    ) -> None:
        """Store the outcome, then publish it. A retry's schedule goes only once it is
        published: its offset was committed long ago, so a crash in between must find the
        retry again (which republishes the stored result)."""
        stored = applied.link.evolve(
            seen_revision=event.revision,
            last_message_id=event.message_id,
            last_result=None,
            last_result_topic=None,
        )
        if applied.action is None:
            await session.conclude(stored, None)
            return
        result = results.linked(event, stored, applied.action, self._clock(), applied.replaced)
        value = result.to_bytes()
        await session.conclude(
            stored.evolve(last_result=value, last_result_topic=self._topics.linked),
            KEEP if pending is not None else None,
        )
        self._crash.reached("after_db")
        await self._publisher.publish(
            self._topics.linked, event.event_id.encode(), value, results.result_headers(result)
        )
        if pending is not None:
            await session.unschedule(pending)
        self._crash.reached("after_publish")

    async def _fail(
        self,
        record: ConsumedRecord,
        event: SourceEvent,
        link: Link | None,
        decision: Decision,
        failure: Failure,
        session: LinkSession,
        pending: PendingRetry | None,
    ) -> None:
        """A final failure: published once; permanent ones remembered so a redelivery repeats
        them, retryable ones (past the horizon) parked with the link as it was, under their
        own id (a replay's outcome follows under the usual one)."""
        result = results.failed(event, decision, failure, self._clock(), parked=failure.retryable)
        value = result.to_bytes()
        if not failure.retryable:
            # Permanent: nothing was made on Zoom; remember the answer so redelivery repeats it.
            base = link or Link(event.event_id, event.organizer.user_id, "none", -1)
            if base.state == "creating":
                base = base.evolve(state="none", creating_since=None)
            await session.conclude(
                base.evolve(
                    seen_revision=event.revision,
                    last_message_id=event.message_id,
                    last_result=value,
                    last_result_topic=self._topics.failed,
                ),
                KEEP if pending is not None else None,
            )
        self._crash.reached("after_db")
        await self._publisher.publish(
            self._topics.failed, event.event_id.encode(), value, results.result_headers(result)
        )
        metrics.FAILURES.labels(failure.reason.value).inc()
        if failure.retryable:
            # Parked for `zoom-worker dlq replay`; the link is as the step left it, so a replay
            # retries (and finds a meeting a lost create made through the intent kept there).
            await self._dead_letter(record, failure.reason.value, failure.detail)
            current = await session.get()
            base = current or Link(event.event_id, event.organizer.user_id, "none", -1)
            await session.conclude(base, None)  # no retry pending any more
        elif pending is not None:
            await session.unschedule(pending)
        self._crash.reached("after_publish")

    async def _defer(
        self,
        record: ConsumedRecord,
        event: SourceEvent,
        decision: Decision,
        failure: Failure,
        session: LinkSession,
        pending: PendingRetry | None,
    ) -> str:
        """Schedule the retry of a failure waiting may cure; tell the calendar the first time.
        Past the horizon, fail for good instead."""
        now = self._clock()
        attempt = pending.attempt + 1 if pending is not None else 1
        first_failed_at = pending.first_failed_at if pending is not None else now
        due = self._retry_policy.due_at(
            attempt, first_failed_at, now, failure.not_before, self._rng
        )
        if due is None:
            metrics.RETRIES_EXPIRED.labels(failure.reason.value).inc()
            log.warning(
                "retry_horizon_passed",
                event_id=event.event_id,
                revision=event.revision,
                reason=failure.reason.value,
                attempts=attempt,
                first_failed_at=first_failed_at.isoformat(),
            )
            await self._fail(
                record, event, await session.get(), decision, failure, session, pending
            )
            return "failed"
        notice = results.failed(event, decision, failure, now, next_attempt_at=due)
        told = pending.notice if pending is not None else notice.to_bytes()
        retry = PendingRetry(
            event_id=event.event_id,
            message_id=event.message_id,
            revision=event.revision,
            attempt=attempt,
            reason=failure.reason.value,
            first_failed_at=first_failed_at,
            due_at=due,
            notice_topic=self._topics.failed,
            notice=told,
        )
        # The link as the step left it (an intent stays, for the retry to recover from).
        current = await session.get() or Link(event.event_id, event.organizer.user_id, "none", -1)
        await session.conclude(current, ScheduledRetry(retry, record))
        metrics.RETRIES_SCHEDULED.labels(failure.reason.value).inc()
        log.info(
            "retry_scheduled",
            event_id=event.event_id,
            revision=event.revision,
            reason=failure.reason.value,
            attempt=attempt,
            due_in_seconds=round((due - now).total_seconds(), 1),
        )
        self._crash.reached("after_db")
        if pending is None:  # told once: a later failure of the same retry says nothing new
            await self._publisher.publish(
                self._topics.failed, event.event_id.encode(), told, results.result_headers(notice)
            )
            metrics.FAILURES.labels(failure.reason.value).inc()
        self._crash.reached("after_publish")
        return "deferred"

    async def _republish(self, event: SourceEvent, decision: Republish) -> None:
        answer = decision.answer
        value = results.answer_for(event, answer, self._topics.linked)
        headers = results.answer_headers(answer, self._topics.linked)
        await self._publisher.publish(answer.topic, event.event_id.encode(), value, headers)

    async def _reject(
        self, record: ConsumedRecord, kind: EventKind | None, err: ContractError
    ) -> None:
        """Park the record untouched and, when we know whose event it is, say so."""
        await self._dead_letter(record, FailureReason.INVALID_EVENT.value, str(err))
        ids = salvage_ids(record.value or b"")
        if ids.event_id is None:
            return
        source_id = ids.message_id or f"{record.topic}/{record.partition}/{record.offset}"
        failed = results.invalid(ids, source_id, kind, self._clock())
        await self._publisher.publish(
            self._topics.failed,
            ids.event_id.encode(),
            failed.to_bytes(),
            results.result_headers(failed),
        )
        metrics.FAILURES.labels(FailureReason.INVALID_EVENT.value).inc()

    async def _dead_letter(self, record: ConsumedRecord, reason: str, detail: str) -> None:
        """Park ``record`` untouched: its own headers first, then the ``x-dlq-*`` ones."""
        headers = dead_letter_headers(
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            detail=detail,
            failed_at=self._clock(),
        )
        await self._publisher.publish(
            self._topics.dead_letter, record.key, record.value, tuple(headers)
        )
        metrics.DEAD_LETTERED.labels(reason).inc()

    def _done(
        self,
        record: ConsumedRecord,
        outcome: str,
        started: float,
        *,
        event: SourceEvent | None = None,
        action: str | None = None,
        reason: str | None = None,
        retry: bool = False,
    ) -> None:
        seconds = time.monotonic() - started
        metrics.MESSAGES.labels(record.topic, outcome).inc()
        metrics.MESSAGE_SECONDS.observe(seconds)
        log.info(
            "message",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_id=event.event_id if event else None,
            revision=event.revision if event else None,
            action=action,
            outcome=outcome,
            retry=retry or None,
            problem=reason,
            duration_ms=round(seconds * 1000, 1),
        )


__all__ = ["Processor", "Topics", "result_message_id"]
