"""The message ``zoom-worker serve`` publishes when Zoom reports a change to a linked meeting:
``meeting.changed``.

Built by the connect side from Zoom's webhooks (``meeting.updated``, ``meeting.deleted``,
``meeting.started``, ``meeting.ended``) for meetings a calendar event's link names, never for
changes the worker itself made. ``parse_changed`` reads one back for consumers and tests.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.errors import parse_json
from schemas.fields import (
    INT64_MAX,
    SINGLE_LINE,
    TIMEZONE_MAX,
    TITLE_MAX,
    EventId,
    MessageId,
    Revision,
    Rfc3339Time,
    SchemaVersion,
    UserId,
)

_CONFIG = ConfigDict(frozen=True, extra="ignore")


class MeetingChange(StrEnum):
    UPDATED_ON_ZOOM = "updated_on_zoom"  # someone moved, renamed or resized it on Zoom
    DELETED_ON_ZOOM = "deleted_on_zoom"  # someone deleted it on Zoom
    STARTED = "started"
    ENDED = "ended"


ChangedField = Literal["topic", "start_time", "duration", "timezone"]
CHANGED_FIELDS: tuple[ChangedField, ...] = ("topic", "start_time", "duration", "timezone")


class ChangedMeeting(BaseModel):
    """The Zoom meeting after the change. For ``updated_on_zoom``: ``topic``, ``start_time``
    and ``duration`` (and ``timezone`` when known) as they now are on Zoom; otherwise ``id``
    alone."""

    model_config = _CONFIG

    id: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    topic: Annotated[str, Field(strict=True, max_length=TITLE_MAX), SINGLE_LINE] | None = None
    start_time: Rfc3339Time | None = None
    duration: Annotated[int, Field(strict=True, ge=0)] | None = None
    timezone: (
        Annotated[str, Field(strict=True, min_length=1, max_length=TIMEZONE_MAX), SINGLE_LINE]
        | None
    ) = None


_NEEDED_WHEN_UPDATED = ("topic", "start_time", "duration")


class MeetingChanged(BaseModel):
    model_config = _CONFIG

    schema_version: SchemaVersion = 1
    message_id: MessageId
    event_id: EventId
    # The calendar revision the worker had last seen for the event when Zoom's change arrived.
    revision: Revision
    organizer_user_id: UserId  # the meeting's host: the Talivo user whose Zoom connection made it
    change: MeetingChange
    meeting: ChangedMeeting
    # Only for updated_on_zoom: which of the meeting's fields Zoom reported changed.
    changed: tuple[ChangedField, ...] | None = None
    occurred_at: Rfc3339Time  # when it happened on Zoom (the webhook's event_ts)

    @model_validator(mode="after")
    def _fields_for_change(self) -> Self:
        if self.change is MeetingChange.UPDATED_ON_ZOOM:
            missing = [n for n in _NEEDED_WHEN_UPDATED if getattr(self.meeting, n) is None]
            if missing:
                raise PydanticCustomError(
                    "meeting_incomplete",
                    "meeting needs {missing} when the change is updated_on_zoom",
                    {"missing": ", ".join(missing)},
                )
            if not self.changed or len(set(self.changed)) != len(self.changed):
                raise PydanticCustomError(
                    "changed_fields", "changed names each changed field once, at least one"
                )
        elif self.changed is not None:
            raise PydanticCustomError(
                "changed_fields", "changed is given only when the change is updated_on_zoom"
            )
        return self

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON; unset fields (the meeting's details but for an update,
        ``changed`` but for an update) are omitted."""
        return self.model_dump_json(exclude_none=True).encode()


def parse_changed(data: bytes) -> MeetingChanged:
    """Read one ``meeting.changed`` value; raise only ``ContractError``."""
    return parse_json(MeetingChanged, data)
