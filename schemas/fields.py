"""Field types shared by every message: RFC 3339 times, IANA time zones, ids, emails, text.

The limits here are the contract; the JSON Schema files in ``schemas/v1`` state the same ones
and ``tests/schemas`` checks that the two agree.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Final = 1

ID_MAX: Final = 256
EVENT_ID_MAX: Final = 128
EMAIL_MAX: Final = 320
NAME_MAX: Final = 256
TITLE_MAX: Final = 200
DESCRIPTION_MAX: Final = 2000
ATTENDEES_MAX: Final = 300
PROVIDER_MAX: Final = 64
TIMEZONE_MAX: Final = 64
INT64_MAX: Final = 2**63 - 1  # revisions and meeting ids are stored as Postgres bigint

# One "@" with something on each side, no whitespace or control characters: deliverability is the
# sender's business. Controls are spelled out because regex engines disagree on whether \x1c-\x1f
# are whitespace (Python's re says yes, pydantic's Rust engine no).
EMAIL_PATTERN: Final = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"

# C0 controls (U+0000-U+001F) and DEL (U+007F) are refused in every id, name and title: they mean
# nothing there, U+0000 cannot be stored in Postgres text, and the rest corrupt keys, logs and
# headers downstream. Free text (a description, an attendee's name) keeps tab, line feed and
# carriage return. The JSON Schema files say the same with ``"not": {"type": "string",
# "pattern": CONTROLS}``: unanchored, that means one thing in every regex dialect, whereas
# ``^[^...]*$`` does not (Python's ``$`` also matches before a trailing newline).
CONTROLS: Final = r"[\u0000-\u001f\u007f]"
TEXT_CONTROLS: Final = r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
_CONTROLS: Final = re.compile(CONTROLS)
_TEXT_CONTROLS: Final = re.compile(TEXT_CONTROLS)

# RFC 3339 section 5.6 date-time: "T" and "Z" in either case, seconds required, offset required.
_RFC3339 = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt]"
    r"(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)

# Reading the zone database is slow (a directory walk); do it once per process.
_IANA_ZONES: Final = frozenset(zoneinfo.available_timezones())


def _rfc3339(value: Any) -> datetime:
    # pydantic's own datetime parsing also takes unix numbers, dates and offset-less times.
    if type(value) is str:  # the JSON case first: it is the hot path
        if _RFC3339.fullmatch(value):
            try:
                parsed = datetime.fromisoformat(value.upper())  # always a fixed offset
            except ValueError:  # 2025-02-30, or a leap second Python cannot hold
                pass
            else:
                return _within_the_calendar(parsed)
    elif isinstance(value, datetime):
        return _as_on_the_wire(value)
    raise PydanticCustomError("rfc3339", "not an RFC 3339 time")


def _within_the_calendar(value: datetime) -> datetime:
    """``value``, whose instant in UTC must fall within years 1-9999.

    An offset can move a valid local time past either end of the calendar: ``9999-12-31T22:00
    -14:00`` is year 10000 in UTC, ``0001-01-01T00:30+14:00`` year 0. Python cannot hold such an
    instant in UTC, Postgres stores it but cannot give it back to Python, and Zoom's UTC format
    cannot spell it, so the contract refuses it here, naming the field.
    """
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "utc_out_of_range", "must fall within years 0001-9999 once moved to UTC"
        ) from None
    return value


def _as_on_the_wire(value: datetime) -> datetime:
    """The same instant with the fixed offset its RFC 3339 text carries.

    Python compares and subtracts two times sharing one ``tzinfo`` by wall clock, ignoring
    ``fold`` and the offset; with a zone such as ``ZoneInfo("Europe/Jersey")`` that is not the
    order of the instants around a DST change (a fold, or a wall time in a gap). Held with a
    fixed offset, a model compares instants, and holds exactly what its wire form will carry.
    """
    offset = value.utcoffset()
    if offset is None:
        raise PydanticCustomError("rfc3339", "must have a UTC offset")
    _within_the_calendar(value)
    if offset % timedelta(minutes=1):
        return value.astimezone(UTC)  # RFC 3339 offsets have no seconds (zoneinfo's LMT does)
    return value.replace(tzinfo=timezone(offset) if offset else UTC, fold=0)


def _iana(value: str) -> str:
    if value not in _IANA_ZONES:
        raise PydanticCustomError("iana_timezone", "not an IANA time zone name")
    return value


def _single_line(value: str) -> str:
    if _CONTROLS.search(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
    return value


def _text(value: str) -> str:
    if _TEXT_CONTROLS.search(value):
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters other than tab, line feed and carriage return",
        )
    return value


def has_controls(value: str) -> bool:
    """Whether ``value`` breaks the rule of ids: any C0 control character or DEL."""
    return _CONTROLS.search(value) is not None


SINGLE_LINE: Final = AfterValidator(_single_line)
"""Refuses every C0 control and DEL: for ids, titles, names of zones and providers."""

TEXT: Final = AfterValidator(_text)
"""Refuses C0 controls and DEL but tab, line feed and carriage return: for free text."""


def _isoformat(value: datetime) -> str:
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        value = value.astimezone(UTC)  # for times a model did not validate (model_construct)
    return value.isoformat().replace("+00:00", "Z")


Rfc3339Time = Annotated[
    datetime,
    PlainValidator(_rfc3339, json_schema_input_type=str),
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
]
"""A timezone-aware time, read only from RFC 3339 text (or an aware ``datetime`` in Python),
whose instant falls within years 0001-9999 in UTC (JSON Schema cannot say so)."""

IanaTimezone = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=TIMEZONE_MAX),
    SINGLE_LINE,
    AfterValidator(_iana),
]
MessageId = Annotated[str, Field(strict=True, min_length=1, max_length=ID_MAX), SINGLE_LINE]
EventId = Annotated[str, Field(strict=True, min_length=1, max_length=EVENT_ID_MAX), SINGLE_LINE]
UserId = Annotated[str, Field(strict=True, min_length=1, max_length=ID_MAX), SINGLE_LINE]
Revision = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
Email = Annotated[str, Field(strict=True, max_length=EMAIL_MAX, pattern=EMAIL_PATTERN)]


def check_schema_version(value: int) -> int:
    """Reject every version but 1; a v2 reader will sit beside this one during a migration."""
    if value != SCHEMA_VERSION:
        raise PydanticCustomError(
            "schema_version", "unsupported version (this reader accepts 1)", {"version": value}
        )
    return value


SchemaVersion = Annotated[int, Field(strict=True), AfterValidator(check_schema_version)]
