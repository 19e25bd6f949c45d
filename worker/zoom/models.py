"""Values the Meetings client takes and returns; Zoom's JSON is read and written only here.

``start_url`` (the host's key to the meeting) is never kept: nothing here has a field for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.zoom.errors import InvalidMeetingSpec

TOPIC_MAX = 200
AGENDA_MAX = 2000
SCHEDULED = 2  # Zoom's meeting type for a meeting at a set time


def _check_text(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InvalidMeetingSpec(f"{name} is {len(value)} characters; Zoom allows {limit}")


def _check_start(value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidMeetingSpec("start_time must be timezone-aware")


def _check_duration(value: int | None) -> None:
    if value is not None and value <= 0:
        raise InvalidMeetingSpec("duration_minutes must be positive")


def zoom_time(value: datetime) -> str:
    """Zoom's UTC form, ``2030-01-31T09:30:00Z``; the year always has four digits.

    ``strftime("%Y")`` writes year 1 as ``1``, so ``isoformat`` spells it. The contract
    (``schemas.fields``) keeps every instant within years 0001-9999 in UTC, so the move to UTC
    cannot overflow.
    """
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MeetingSpec:
    """A scheduled meeting to create; checked against Zoom's limits when made."""

    topic: str
    agenda: str
    start_time: datetime
    duration_minutes: int
    timezone: str

    def __post_init__(self) -> None:
        _check_text("topic", self.topic, TOPIC_MAX)
        _check_text("agenda", self.agenda, AGENDA_MAX)
        if self.start_time is None:
            raise InvalidMeetingSpec("a scheduled meeting needs a start_time")
        _check_start(self.start_time)
        _check_duration(self.duration_minutes)

    def body(self) -> dict[str, Any]:
        # type 2 always with a start_time: without one Zoom makes an instant meeting.
        return {
            "topic": self.topic,
            "type": SCHEDULED,
            "start_time": zoom_time(self.start_time),
            "duration": self.duration_minutes,
            "timezone": self.timezone,
            "agenda": self.agenda,
        }


@dataclass(frozen=True)
class MeetingPatch:
    """Changes to a meeting; only the fields that are set are sent."""

    topic: str | None = None
    agenda: str | None = None
    start_time: datetime | None = None
    duration_minutes: int | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        _check_text("topic", self.topic, TOPIC_MAX)
        _check_text("agenda", self.agenda, AGENDA_MAX)
        _check_start(self.start_time)
        _check_duration(self.duration_minutes)

    def body(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "topic": self.topic,
            "agenda": self.agenda,
            "start_time": zoom_time(self.start_time) if self.start_time else None,
            "duration": self.duration_minutes,
            "timezone": self.timezone,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class Meeting:
    id: int
    join_url: str
    password: str | None
    topic: str
    start_time: datetime | None
    duration: int
    timezone: str
    host_id: str
    created_at: datetime | None

    @classmethod
    def from_zoom(cls, body: dict[str, Any]) -> Meeting:
        return cls(
            id=int(body["id"]),
            join_url=str(body["join_url"]),
            password=body.get("password"),
            topic=str(body.get("topic", "")),
            start_time=parse_time(body.get("start_time")),
            duration=int(body.get("duration", 0)),
            timezone=str(body.get("timezone", "")),
            host_id=str(body.get("host_id", "")),
            created_at=parse_time(body.get("created_at")),
        )


@dataclass(frozen=True)
class MeetingSummary:
    """One row of ``GET /users/me/meetings``."""

    id: int
    topic: str
    start_time: datetime | None
    duration: int
    timezone: str
    join_url: str
    host_id: str
    created_at: datetime | None

    @classmethod
    def from_zoom(cls, body: dict[str, Any]) -> MeetingSummary:
        return cls(
            id=int(body["id"]),
            topic=str(body.get("topic", "")),
            start_time=parse_time(body.get("start_time")),
            duration=int(body.get("duration", 0)),
            timezone=str(body.get("timezone", "")),
            join_url=str(body.get("join_url", "")),
            host_id=str(body.get("host_id", "")),
            created_at=parse_time(body.get("created_at")),
        )
