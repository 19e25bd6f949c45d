"""The one error a message parser raises, and the translation from pydantic's errors.

Exception tree::

    ValueError
     └── ContractError      bytes are not a valid message: bad UTF-8 or JSON, not an object,
                            unsupported schema_version, or a field breaks a rule

pydantic's ``ValidationError`` is translated here and nowhere else, so callers catch exactly
``ContractError``. Messages name the field and the rule, never the offending value (values can
hold personal data such as attendee emails).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

M = TypeVar("M", bound=BaseModel)


class ContractError(ValueError):
    """A message that breaks its contract.

    ``field`` is the dotted path of the first problem (``attendees.3.email``), or ``None`` when
    the message as a whole is unreadable; ``why`` says what is wrong with it; ``problems`` holds
    every ``(field, why)`` found, first one first.
    """

    def __init__(
        self, field: str | None, why: str, problems: Sequence[tuple[str | None, str]] = ()
    ) -> None:
        self.field = field
        self.why = why
        self.problems: tuple[tuple[str | None, str], ...] = tuple(problems) or ((field, why),)
        super().__init__(_render(self.problems))


def _render(problems: tuple[tuple[str | None, str], ...]) -> str:
    field, why = problems[0]
    text = f"{field}: {why}" if field is not None else why
    more = len(problems) - 1
    if more:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text


def parse_json(model: type[M], data: bytes) -> M:
    """``model`` read from JSON ``data``; raise only ``ContractError``."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def from_validation_error(exc: ValidationError) -> ContractError:
    """Translate pydantic's errors; an unsupported ``schema_version`` is reported first."""
    problems = [(_field(e["loc"]), _why(e)) for e in exc.errors(include_url=False)]
    problems.sort(key=lambda p: p[0] != "schema_version")  # stable: keeps pydantic's order
    if not problems:  # pragma: no cover - pydantic never raises an empty ValidationError
        problems = [(None, "invalid message")]
    field, why = problems[0]
    return ContractError(field, why, problems)


def _field(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(part) for part in loc) if loc else None


def _ctx(error: ErrorDetails, key: str) -> Any:
    return (error.get("ctx") or {}).get(key)


def _why(error: ErrorDetails) -> str:
    kind = error["type"]
    at_root = not error["loc"]
    if kind == "json_invalid":
        return "not valid UTF-8 JSON"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "message must be a JSON object" if at_root else "must be an object"
    if kind == "missing":
        return "required"
    if kind == "string_type":
        return "must be a string"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "list_type":
        return "must be a list"
    if kind == "string_too_short":
        n = _ctx(error, "min_length")
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {_ctx(error, 'max_length')} characters"
    if kind == "too_long":
        return f"must have at most {_ctx(error, 'max_length')} items"
    if kind == "greater_than_equal":
        return f"must be at least {_ctx(error, 'ge')}"
    if kind == "less_than_equal":
        return f"must be at most {_ctx(error, 'le')}"
    if kind == "string_pattern_mismatch":
        last = error["loc"][-1] if error["loc"] else ""
        return "not an email address" if last == "email" else "has the wrong format"
    if kind == "enum":
        return f"must be one of {_ctx(error, 'expected')}"
    msg = error["msg"]
    return msg[:1].lower() + msg[1:]  # our own PydanticCustomError messages and the rest
