"""Calendar events the worker consumes: ``event.created``, ``event.updated``, ``event.deleted``.

``parse_event`` is the edge: any bytes at all go in, a frozen model or ``ContractError`` comes
out. Unknown fields are ignored so producers can add fields without a new version.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.errors import ContractError, from_validation_error
from schemas.fields import (
    ATTENDEES_MAX,
    DESCRIPTION_MAX,
    NAME_MAX,
    PROVIDER_MAX,
    SINGLE_LINE,
    TEXT,
    TITLE_MAX,
    Email,
    EventId,
    IanaTimezone,
    MessageId,
    Revision,
    Rfc3339Time,
    SchemaVersion,
    UserId,
)

MAX_DURATION = timedelta(hours=24)

_CONFIG = ConfigDict(frozen=True, extra="ignore", strict=True)


class _Message(BaseModel):
    model_config = _CONFIG

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON, as a producer would publish it (used by tests and the demo)."""
        return self.model_dump_json(exclude_none=True).encode()


class Organizer(BaseModel):
    model_config = _CONFIG

    user_id: UserId
    email: Email


class Attendee(BaseModel):
    model_config = _CONFIG

    email: Email
    name: Annotated[str, Field(max_length=NAME_MAX), TEXT] | None = None


class _EventFields(_Message):
    schema_version: SchemaVersion  # required from producers, unlike in our own messages
    message_id: MessageId
    event_id: EventId
    revision: Revision
    occurred_at: Rfc3339Time
    organizer: Organizer


class EventDeleted(_EventFields):
    pass


class EventUpsert(_EventFields):
    """The fields shared by ``event.created`` and ``event.updated``."""

    title: Annotated[str, Field(min_length=1, max_length=TITLE_MAX), SINGLE_LINE]
    description: Annotated[str, Field(max_length=DESCRIPTION_MAX), TEXT] | None = None
    start: Rfc3339Time
    end: Rfc3339Time
    timezone: IanaTimezone
    # Not strict: Python callers may pass a list; items stay strict.
    attendees: Annotated[tuple[Attendee, ...], Field(strict=False, max_length=ATTENDEES_MAX)] = ()
    video_conference: Annotated[str, Field(min_length=1, max_length=PROVIDER_MAX), SINGLE_LINE]

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        # Both hold fixed offsets by now (see fields.Rfc3339Time), so this compares instants.
        start = info.data.get("start")  # absent when start itself failed
        if isinstance(start, datetime):
            if end <= start:
                raise PydanticCustomError("end_before_start", "must be after start")
            if end - start > MAX_DURATION:
                raise PydanticCustomError("event_too_long", "must be at most 24 hours after start")
        return end

    @property
    def wants_zoom(self) -> bool:
        """Only ``"zoom"`` is ours; ``"none"`` and other providers mean no Zoom meeting."""
        return self.video_conference == "zoom"

    @property
    def duration_minutes(self) -> int:
        return math.ceil((self.end - self.start).total_seconds() / 60)


class EventCreated(EventUpsert):
    pass


class EventUpdated(EventUpsert):
    pass


EventKind = Literal["created", "updated", "deleted"]
SourceEvent = EventCreated | EventUpdated | EventDeleted

_MODELS: dict[str, type[EventCreated] | type[EventUpdated] | type[EventDeleted]] = {
    "created": EventCreated,
    "updated": EventUpdated,
    "deleted": EventDeleted,
}


def parse_event(kind: EventKind, data: bytes) -> SourceEvent:
    """Read one record value of the ``event.<kind>`` topic; raise only ``ContractError``."""
    try:
        return _MODELS[kind].model_validate_json(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # belt and braces: bytes are untrusted
        raise ContractError(None, f"unreadable message ({type(exc).__name__})") from None
