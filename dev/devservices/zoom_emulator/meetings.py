"""Meeting records and their JSON, as Zoom's Meetings API shapes them."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devservices.zoom_emulator.models import MeetingRecord, UserRecord
from devservices.zoom_emulator.state import Refusal, World

TOPIC_MAX = 200
AGENDA_MAX = 2000


def iso(moment: datetime) -> str:
    """Zoom's UTC form, ``2026-12-01T15:00:00Z``."""
    # Not strftime: its "%Y" writes year 1 as "1"; isoformat always writes four digits.
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


_iso = iso


def _validation(field: str, message: str) -> Refusal:
    return Refusal(
        400,
        {
            "code": 300,
            "message": "Validation Failed.",
            "errors": [{"field": field, "message": message}],
        },
    )


def _start_time(value: Any, timezone: str) -> datetime:
    """Zoom's two forms: ``...Z`` in UTC, or a local time read in ``timezone``."""
    if not isinstance(value, str):
        raise _validation("start_time", "Invalid field.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _validation("start_time", "Invalid field.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(timezone))
    return parsed.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise _validation("timezone", "Invalid field.") from None


def _text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _validation(field, f"The {field} must be a string of at most {limit} characters.")
    return value


def _duration(body: dict[str, Any]) -> int | None:
    value = body.get("duration")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _validation("duration", "Invalid field.")
    return value


def create(world: World, host: UserRecord, body: dict[str, Any], base_url: str) -> MeetingRecord:
    meeting_type = body.get("type", 2)
    if meeting_type not in (1, 2, 3, 8):
        raise _validation("type", "Invalid field.")
    timezone = body.get("timezone") or "UTC"
    if not isinstance(timezone, str):
        raise _validation("timezone", "Invalid field.")
    _zone(timezone)
    now = world.now()
    start: datetime | None
    if meeting_type == 2 and body.get("start_time") is None:
        # Real Zoom silently turns a scheduled meeting without a start into an instant one.
        meeting_type, start = 1, now
    elif meeting_type == 1:
        start = now
    else:
        start = _start_time(body.get("start_time"), timezone)
    with world.lock:
        meeting_id = next(world._meeting_ids)
        password = secrets.token_hex(3)
        record = MeetingRecord(
            id=meeting_id,
            uuid=uuid.uuid4().hex[:22] + "==",
            host_id=host.id,
            host_email=host.email,
            topic=_text(body, "topic", TOPIC_MAX) or "Zoom Meeting",
            type=meeting_type,
            start_time=start,
            duration=_duration(body) or 60,
            timezone=timezone,
            agenda=_text(body, "agenda", AGENDA_MAX) or "",
            password=password,
            join_url=f"{base_url}/j/{meeting_id}?pwd={secrets.token_urlsafe(16)}",
            start_url=f"{base_url}/s/{meeting_id}?zak={secrets.token_urlsafe(24)}",
            created_at=now.replace(microsecond=0),
        )
        world.secrets.append(record.start_url)
        world.meetings[meeting_id] = record
        return record


def update(record: MeetingRecord, body: dict[str, Any]) -> None:
    timezone = body.get("timezone", record.timezone)
    if not isinstance(timezone, str):
        raise _validation("timezone", "Invalid field.")
    _zone(timezone)
    topic = _text(body, "topic", TOPIC_MAX)
    agenda = _text(body, "agenda", AGENDA_MAX)
    duration = _duration(body)
    start = _start_time(body["start_time"], timezone) if "start_time" in body else None
    if "type" in body and body["type"] not in (1, 2, 3, 8):
        raise _validation("type", "Invalid field.")
    record.timezone = timezone
    if topic is not None:
        record.topic = topic
    if agenda is not None:
        record.agenda = agenda
    if duration is not None:
        record.duration = duration
    if start is not None:
        record.start_time = start
        record.type = 2 if record.type == 1 else record.type
    if "type" in body:
        record.type = body["type"]


def as_json(record: MeetingRecord, *, full: bool) -> dict[str, Any]:
    """The create (``full``) and get answers; the list uses :func:`as_summary`."""
    answer: dict[str, Any] = {
        "uuid": record.uuid,
        "id": record.id,
        "host_id": record.host_id,
        "host_email": record.host_email,
        "topic": record.topic,
        "type": record.type,
        "status": "waiting",
        "timezone": record.timezone,
        "agenda": record.agenda,
        "created_at": _iso(record.created_at),
        "start_url": record.start_url,
        "join_url": record.join_url,
        "password": record.password,
        "h323_password": record.password,
        "pstn_password": record.password,
        "encrypted_password": record.join_url.rpartition("pwd=")[2],
        "pre_schedule": False,
        "duration": record.duration,
        "creation_source": "open_api",
    }
    if record.start_time is not None:
        answer["start_time"] = _iso(record.start_time)
    return answer


def as_summary(record: MeetingRecord) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "uuid": record.uuid,
        "id": record.id,
        "host_id": record.host_id,
        "topic": record.topic,
        "type": record.type,
        "duration": record.duration,
        "timezone": record.timezone,
        "agenda": record.agenda,
        "created_at": _iso(record.created_at),
        "join_url": record.join_url,
    }
    if record.start_time is not None:
        answer["start_time"] = _iso(record.start_time)
    return answer


def is_upcoming(record: MeetingRecord, now: datetime) -> bool:
    if record.start_time is None:
        return False
    return record.start_time + timedelta(minutes=record.duration) >= now
