"""The JSON Schema files as validators, with the formats the contract relies on checked."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

import schemas

SCHEMA_DIR = Path(schemas.__file__).parent
TOPICS = ("event.created", "event.updated", "event.deleted", "meeting.linked", "meeting.failed")

FORMATS = FormatChecker(["email"])


def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


def _date_time(value: object) -> bool:
    # jsonschema only checks date-time with an optional package; the schema's pattern does the
    # syntax, this catches impossible dates such as 2025-02-30.
    if isinstance(value, str):
        datetime.fromisoformat(value.upper())
    return True


FORMATS.checks("uri")(_uri)
FORMATS.checks("date-time", raises=ValueError)(_date_time)


def load(topic: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMA_DIR / "v1" / f"{topic}.json").read_text())
    return document


@cache
def validator(topic: str) -> Draft202012Validator:
    document = load(topic)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=FORMATS)


def schema_errors(topic: str, value: object) -> list[str]:
    found = validator(topic).iter_errors(value)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
