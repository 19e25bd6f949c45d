"""Building the published results: pure functions of the event, the link and the time.

Result ids are deterministic (a UUIDv5 of the source ``message_id``), so a redelivered source
always yields the same result id and consumers can drop the copy.

Each result goes out with the headers ``schemas/asyncapi.yaml`` gives its message
(``messageHeaders``: ``message-type``, ``schema-version``, ``content-type``), the same ones when
a stored result is published again. The source record's headers are not carried over: the
document names no other header for a result.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from schemas import (
    EventKind,
    FailedAction,
    FailureReason,
    LinkedAction,
    MeetingDetails,
    MeetingFailed,
    MeetingLinked,
    ReplacedMeeting,
    SalvagedIds,
    SourceEvent,
    parse_failed,
    parse_linked,
)
from schemas.headers import message_headers
from worker.pipeline.decision import Cancel, Create, Decision, Handover, Update
from worker.pipeline.failures import Failure
from worker.pipeline.links import Link
from worker.pipeline.pending import Answer
from worker.pipeline.ports import Headers

_RESULT_NS = uuid.UUID("5b0f3b1e-7c1a-4d55-9d0e-6f1c2a9e4b10")
_NOTICE_NS = uuid.UUID("0d6c2f4e-93a1-4b7e-8c55-2e7f1a9b3d60")
_PARKED_NS = uuid.UUID("7a41c0d2-5e93-4f18-b6a7-3c2d9e8f1b54")

LINKED_MESSAGE: Final = "meeting.linked"
FAILED_MESSAGE: Final = "meeting.failed"
"""The AsyncAPI message names, whatever the topics are called (``TOPIC_*`` settings)."""

ACTION_BY_KIND: dict[EventKind, FailedAction] = {
    "created": FailedAction.CREATE,
    "updated": FailedAction.UPDATE,
    "deleted": FailedAction.CANCEL,
}


def result_message_id(source_message_id: str) -> str:
    return str(uuid.uuid5(_RESULT_NS, source_message_id))


def notice_message_id(source_message_id: str) -> str:
    """The id of the one notice that a source is being retried: another id than its outcome's,
    so a consumer that drops repeated ids still receives the outcome."""
    return str(uuid.uuid5(_NOTICE_NS, source_message_id))


def result_headers(result: MeetingLinked | MeetingFailed) -> Headers:
    """The headers to publish ``result`` with: its message name, its ``schema_version``, JSON."""
    name = LINKED_MESSAGE if isinstance(result, MeetingLinked) else FAILED_MESSAGE
    return tuple(message_headers(name, result.schema_version))


def linked(
    event: SourceEvent,
    link: Link,
    action: LinkedAction,
    now: datetime,
    replaced: ReplacedMeeting | None = None,
) -> MeetingLinked:
    """The meeting as the link now stores it (only its id once cancelled); ``replaced``: after
    a handover, what became of the earlier host's meeting."""
    assert link.zoom_meeting_id is not None
    if action is LinkedAction.CANCELLED:
        details = MeetingDetails(id=link.zoom_meeting_id)
    else:
        details = MeetingDetails(
            id=link.zoom_meeting_id,
            join_url=link.join_url,
            topic=link.title,
            start_time=link.start_time,
            duration=link.duration_minutes,
            timezone=link.timezone,
        )
    return MeetingLinked(
        message_id=result_message_id(event.message_id),
        correlation_id=event.message_id,
        event_id=event.event_id,
        revision=event.revision,
        organizer_user_id=event.organizer.user_id,
        action=action,
        meeting=details,
        linked_at=now,
        replaced_meeting=replaced,
    )


def parked_message_id(source_message_id: str) -> str:
    """The id of the failure published when a source is parked for ``dlq replay``: another id
    than a replay's outcome, which follows under ``result_message_id``."""
    return str(uuid.uuid5(_PARKED_NS, source_message_id))


def failed(
    event: SourceEvent,
    decision: Decision,
    failure: Failure,
    now: datetime,
    next_attempt_at: datetime | None = None,
    *,
    parked: bool = False,
) -> MeetingFailed:
    """The failure of ``event``'s step; with ``next_attempt_at``, the one notice that the worker
    retries it by itself (under its own id); ``parked``: final, the source parked for replay
    (under its own id too); else the outcome."""
    if next_attempt_at is not None:
        message_id = notice_message_id(event.message_id)
    elif parked:
        message_id = parked_message_id(event.message_id)
    else:
        message_id = result_message_id(event.message_id)
    return MeetingFailed(
        message_id=message_id,
        correlation_id=event.message_id,
        event_id=event.event_id,
        revision=event.revision,
        organizer_user_id=event.organizer.user_id,
        action=failed_action(decision),
        reason=failure.reason,
        message=failure.reason.sentence,
        retryable=failure.retryable,
        attempts=failure.attempts,
        failed_at=now,
        next_attempt_at=next_attempt_at,
    )


def invalid(
    ids: SalvagedIds, source_id: str, kind: EventKind | None, now: datetime
) -> MeetingFailed:
    """For a source that broke the contract, with whatever ids could be read from it."""
    return _unprocessed(ids, source_id, kind, FailureReason.INVALID_EVENT, False, 1, now)


def answer_for(event: SourceEvent, answer: Answer, linked_topic: str) -> bytes:
    """The stored result, correlated to ``event``: for a stale or redelivered source."""
    if answer.message_id == event.message_id:
        return answer.value  # an exact redelivery: byte for byte the same result
    stored = _stored(answer, linked_topic)
    update = {
        "message_id": _correlated_id(stored, event.message_id),
        "correlation_id": event.message_id,
    }
    return stored.model_copy(update=update).to_bytes()


def answer_headers(answer: Answer, linked_topic: str) -> Headers:
    """The headers for ``answer_for``'s value: those the stored result was first published with."""
    return result_headers(_stored(answer, linked_topic))


def _stored(answer: Answer, linked_topic: str) -> MeetingLinked | MeetingFailed:
    if answer.topic == linked_topic:
        return parse_linked(answer.value)
    return parse_failed(answer.value)


def _correlated_id(stored: MeetingLinked | MeetingFailed, source_message_id: str) -> str:
    if isinstance(stored, MeetingFailed) and stored.next_attempt_at is not None:
        return notice_message_id(source_message_id)
    return result_message_id(source_message_id)


def failed_action(decision: Decision) -> FailedAction:
    if isinstance(decision, Create | Handover):
        return FailedAction.CREATE  # a handover creates the new organizer's meeting
    if isinstance(decision, Update):
        return FailedAction.UPDATE
    if isinstance(decision, Cancel):
        return FailedAction.CANCEL
    raise AssertionError(f"no Zoom action for {type(decision).__name__}")


def processing_error(
    ids: SalvagedIds, source_id: str, kind: EventKind | None, attempts: int, now: datetime
) -> MeetingFailed:
    """For a source the worker failed on every time it tried (parked for ``dlq replay``); a
    replay, or the event saved again, may well succeed."""
    reason = FailureReason.PROCESSING_ERROR
    failed = _unprocessed(ids, source_id, kind, reason, True, attempts, now)
    return failed.model_copy(update={"message_id": parked_message_id(source_id)})


def _unprocessed(
    ids: SalvagedIds,
    source_id: str,
    kind: EventKind | None,
    reason: FailureReason,
    retryable: bool,
    attempts: int,
    now: datetime,
) -> MeetingFailed:
    """A failure for a source that never reached a decision: only salvaged ids are known."""
    assert ids.event_id is not None
    return MeetingFailed(
        message_id=result_message_id(source_id),
        correlation_id=source_id,
        event_id=ids.event_id,
        revision=ids.revision,
        organizer_user_id=ids.organizer_user_id,
        action=ACTION_BY_KIND[kind] if kind else None,
        reason=reason,
        message=reason.sentence,
        retryable=retryable,
        attempts=attempts,
        failed_at=now,
    )
