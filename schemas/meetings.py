"""Messages the worker publishes: ``meeting.linked`` and ``meeting.failed``.

Built by the worker in Python (enums may be given as their string values) and serialised with
``to_bytes``; ``parse_linked`` / ``parse_failed`` read them back for consumers and tests.
``MeetingDetails`` has no ``start_url`` field, so the host's key cannot be published even when a
Zoom answer is passed in whole (unknown fields are dropped).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.errors import parse_json
from schemas.fields import (
    INT64_MAX,
    TITLE_MAX,
    EventId,
    MessageId,
    Revision,
    Rfc3339Time,
    SchemaVersion,
    UserId,
)
from schemas.reasons import FailureReason

URL_MAX = 2048
MESSAGE_MAX = 1000

_CONFIG = ConfigDict(frozen=True, extra="ignore")


class LinkedAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    CANCELLED = "cancelled"


class FailedAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CANCEL = "cancel"


class MeetingDetails(BaseModel):
    """The Zoom meeting as attendees see it; for ``cancelled`` only ``id`` is set."""

    model_config = _CONFIG

    id: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    join_url: Annotated[str, Field(strict=True, min_length=1, max_length=URL_MAX)] | None = None
    password: Annotated[str, Field(strict=True, max_length=64)] | None = None
    topic: Annotated[str, Field(strict=True, max_length=TITLE_MAX)] | None = None
    start_time: Rfc3339Time | None = None
    duration: Annotated[int, Field(strict=True, ge=0)] | None = None
    timezone: Annotated[str, Field(strict=True, max_length=64)] | None = None


_NEEDED_UNLESS_CANCELLED = ("join_url", "topic", "start_time", "duration")


class ReplacedMeeting(BaseModel):
    """After the event changed organizer: the earlier organizer's meeting this one replaces.

    ``cancelled``: deleted on Zoom with its own host's token (or already gone). Otherwise it was
    left on Zoom, because its host's Zoom connection no longer works (``reason`` says how);
    someone with that Zoom account has to delete it. The worker never uses another token.
    """

    model_config = _CONFIG

    id: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    organizer_user_id: UserId
    cancelled: Annotated[bool, Field(strict=True)]
    reason: FailureReason | None = None

    @model_validator(mode="after")
    def _reason_when_left(self) -> Self:
        if self.cancelled == (self.reason is not None):
            raise PydanticCustomError(
                "replaced_reason", "reason is given exactly when the meeting was not cancelled"
            )
        return self


class MeetingLinked(BaseModel):
    model_config = _CONFIG

    schema_version: SchemaVersion = 1
    message_id: MessageId
    correlation_id: MessageId
    event_id: EventId
    revision: Revision
    organizer_user_id: UserId
    action: LinkedAction
    meeting: MeetingDetails
    linked_at: Rfc3339Time
    # Only after an organizer change (a handover): what became of the earlier host's meeting.
    replaced_meeting: ReplacedMeeting | None = None

    @model_validator(mode="after")
    def _details_for_action(self) -> Self:
        if self.action is not LinkedAction.CANCELLED:
            missing = [n for n in _NEEDED_UNLESS_CANCELLED if getattr(self.meeting, n) is None]
            if missing:
                raise PydanticCustomError(
                    "meeting_incomplete",
                    "meeting needs {missing} unless the action is cancelled",
                    {"missing": ", ".join(missing)},
                )
        return self

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON; unset fields (password, all meeting fields but id for a cancel,
        ``replaced_meeting`` but after a handover) are omitted."""
        return self.model_dump_json(exclude_none=True).encode()


class MeetingFailed(BaseModel):
    """``event_id`` and friends are ``None`` only when the source could not be read that far."""

    model_config = _CONFIG

    schema_version: SchemaVersion = 1
    message_id: MessageId
    correlation_id: MessageId
    event_id: EventId | None
    revision: Revision | None
    organizer_user_id: UserId | None
    action: FailedAction | None
    reason: FailureReason
    message: Annotated[str, Field(strict=True, min_length=1, max_length=MESSAGE_MAX)]
    retryable: Annotated[bool, Field(strict=True)]
    attempts: Annotated[int, Field(strict=True, ge=0)]
    failed_at: Rfc3339Time
    # Only while the worker retries by itself: when it tries next. The outcome follows as a
    # result with another message_id (``meeting.linked``, or a final ``meeting.failed``).
    next_attempt_at: Rfc3339Time | None = None

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON; unknown ids are written as ``null``, never left out;
        ``next_attempt_at`` only when set."""
        unset = None if self.next_attempt_at is not None else {"next_attempt_at"}
        return self.model_dump_json(exclude=unset).encode()


def parse_linked(data: bytes) -> MeetingLinked:
    """Read one ``meeting.linked`` value; raise only ``ContractError``."""
    return parse_json(MeetingLinked, data)


def parse_failed(data: bytes) -> MeetingFailed:
    """Read one ``meeting.failed`` value; raise only ``ContractError``."""
    return parse_json(MeetingFailed, data)
