"""Structured logging: one JSON (or console) line per event, secrets scrubbed at the sink.

Both paths end in the same processors and renderer: structlog's own loggers, and every
standard-library logger (aiokafka, uvicorn, psycopg, asyncio, httpx, ...) through a
``ProcessorFormatter`` on the root handler. Foreign loggers put everything in the message
text, so that text is scrubbed too (``Bearer ...``, ``access_token=...``, URL passwords).

The scrubber is a last line of defence, not the plan: code never passes tokens to a logger.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|code_verifier|key)", re.I)
_SAFE_KEYS = frozenset({"event_id", "message_id", "correlation_id", "key_id", "kid"})
_REDACTED = "[redacted]"
# Secret-shaped pieces of free text, each replaced by its group 1 and the redaction mark.
_SECRET_TEXT = (
    # Authorization header values: "Bearer <token>", "Basic <base64>".
    re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.I),
    re.compile(r"(\bBasic\s+)[A-Za-z0-9+/]{8,}=*"),
    # key=value, key: value, "key": "value" for secret-looking keys.
    re.compile(
        r"(\b[\w.-]*(?:token|secret|password|passwd|code_verifier|api[_-]?key)[\"']?"
        r"\s*[:=]\s*[\"']?)[^\s\"'&,;)}\]]+",
        re.I,
    ),
    # A bare JWT (Zoom's access and refresh tokens are JWTs): its header starts "eyJ", the
    # base64url of '{"'.
    re.compile(r"(^|[^\w-])eyJ[\w-]{8,}(?:\.[\w-]*){0,2}"),
    # An OAuth authorization code in a query string.
    re.compile(r"([?&]code=)[^\s&#\"']+"),
    # The password in a URL: scheme://user:password@host.
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.I),
)
_TEXT_FIELDS = ("event", "exception")


@functools.lru_cache(maxsize=4096)  # keys are the code's own names: a few hundred at most
def _secret_key(key: str) -> bool:
    return key not in _SAFE_KEYS and _SECRET_KEYS.search(key) is not None


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _secret_key(key):
            event[key] = _REDACTED
    return event


def scrub_text(text: str) -> str:
    """``text`` with secret-shaped pieces (see ``_SECRET_TEXT``) replaced by ``[redacted]``."""
    # An event's name, the usual text: no space, ':', '=', '?' or '&' for a pattern to match,
    # and a JWT only at its start.
    if text.isidentifier() and not text.startswith("eyJ"):
        return text
    for pattern in _SECRET_TEXT:
        text = pattern.sub(rf"\g<1>{_REDACTED}", text)
    return text


def _scrub_text(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _TEXT_FIELDS:
        value = event.get(key)
        if isinstance(value, str):
            event[key] = scrub_text(value)
    return event


def _tidy_foreign(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    if isinstance(event.get("event"), str):
        event["event"] = event["event"].rstrip()
    return event


class RepeatFilter(logging.Filter):
    """Lets one record per (logger, message template) through every ``window`` seconds.

    During a broker outage aiokafka logs the same connection error thousands of times a
    second; ops need to see it once in a while, with how often it happened meanwhile
    (``repeated``), not a flood that buries everything else.
    """

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window = window
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.repeated = last[1]  # rendered by ExtraAdder
        if len(self._seen) > 1000:  # templates are few; this only bounds a pathological case
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True


def configure(level: str = "INFO", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Standard-library records: same keys as structlog's (plus ``logger``), same scrubbing.
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                _tidy_foreign,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _scrub,
                structlog.processors.format_exc_info,
                _scrub_text,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("aiokafka", "httpx", "httpcore", "uvicorn", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            structlog.processors.format_exc_info,
            _scrub_text,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
