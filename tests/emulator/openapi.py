"""Validators for the vendored Zoom Meetings OpenAPI schemas (see its SOURCE.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SPEC = Path(__file__).parents[2] / "dev/devservices/zoom_emulator/openapi/meetings-openapi.json"

CREATE_REQUEST = "UserIdMeetingsBody"
CREATE_RESPONSE = "InlineResponse2018"
GET_RESPONSE = "InlineResponse20013"
LIST_RESPONSE = "InlineResponse20028"
UPDATE_REQUEST = "MeetingsmeetingIdBody"


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC.read_text())
    return document


def validate(schema_name: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` fits the named schema."""
    schema = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": _document()["components"],
    }
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(instance)


def strict(schema_name: str) -> set[str]:
    """The property names a schema defines (to catch fields Zoom does not have)."""
    return set(_document()["components"]["schemas"][schema_name].get("properties", {}))
