"""Best-effort ids from a message that failed to parse, so its ``meeting.failed`` can name it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from schemas.fields import EVENT_ID_MAX, ID_MAX, INT64_MAX, has_controls


@dataclass(frozen=True, slots=True)
class SalvagedIds:
    """Each id is ``None`` unless it was found and is itself valid (so a result can carry it)."""

    message_id: str | None = None
    event_id: str | None = None
    revision: int | None = None
    organizer_user_id: str | None = None


# For text that is not JSON at all (truncated, say): top-level-looking "name": "value" pairs.
_STRING_FIELD = re.compile(r'"(message_id|event_id|user_id)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_REVISION = re.compile(r'"revision"\s*:\s*(\d{1,19})(?![\d.eE])')


def salvage_ids(data: bytes) -> SalvagedIds:
    """Pull what ids can be trusted out of ``data``; never raises."""
    try:
        text = data.decode("utf-8", errors="replace")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return _from_text(text)
        return _from_object(doc) if isinstance(doc, dict) else SalvagedIds()
    except Exception:  # the caller is already handling one bad message; don't add a second
        return SalvagedIds()


def _from_object(doc: dict[str, Any]) -> SalvagedIds:
    organizer = doc.get("organizer")
    user_id = organizer.get("user_id") if isinstance(organizer, dict) else None
    return SalvagedIds(
        message_id=_text(doc.get("message_id"), ID_MAX),
        event_id=_text(doc.get("event_id"), EVENT_ID_MAX),
        revision=_revision(doc.get("revision")),
        organizer_user_id=_text(user_id, ID_MAX),
    )


def _from_text(text: str) -> SalvagedIds:
    found: dict[str, str] = {}
    for match in _STRING_FIELD.finditer(text):
        found.setdefault(match.group(1), match.group(2))
    revision = _REVISION.search(text)
    return SalvagedIds(
        message_id=_text(_unescape(found.get("message_id")), ID_MAX),
        event_id=_text(_unescape(found.get("event_id")), EVENT_ID_MAX),
        revision=_revision(int(revision.group(1))) if revision else None,
        organizer_user_id=_text(_unescape(found.get("user_id")), ID_MAX),
    )


def _unescape(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _text(value: object, limit: int) -> str | None:
    if (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and "\ufffd" not in value
        and not has_controls(value)  # a meeting.failed could not carry it
    ):
        return value
    return None


def _revision(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX:
        return value
    return None
