"""Every line a process prints goes through structlog: standard-library loggers (aiokafka,
uvicorn, anything else) render like structlog's own lines and pass the same secret scrubbing.

Each case runs in a subprocess, so the root logging configuration does not leak into other
tests. The child makes aiokafka and uvicorn log for real: a producer bootstrapping from a
closed loopback port, and an application raising under ``serving`` (uvicorn logs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.runtime.logging import scrub_text

ROOT = Path(__file__).resolve().parents[2]

SECRETS = ("sk-secret-123", "access_token=abc", "abc-secret-456", "pw-secret-789", "kw-secret-0")

CHILD = r"""
import asyncio, logging, os, socket, sys

import httpx
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from starlette.applications import Starlette
from starlette.routing import Route

from worker.runtime import logging as worker_logging
from worker.runtime.health import serving

worker_logging.configure("INFO", os.environ["LOG_FORMAT"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def kafka_bootstrap():
    # (a) aiokafka: nothing listens on this port, so bootstrapping logs an error and fails.
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{free_port()}")
    try:
        await producer.start()
    except KafkaConnectionError:
        pass
    finally:
        await producer.stop()


async def failing_app():
    # (b) uvicorn: the application raises, so uvicorn logs "Exception in ASGI application".
    async def fail(_):
        raise RuntimeError("upstream said: Bearer sk-secret-123")

    port = free_port()
    app = Starlette(routes=[Route("/fail", fail)])
    async with serving(app, port, host="127.0.0.1"), httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/fail")
        assert response.status_code == 500, response


def foreign_lines():
    # (c) a foreign logger with secrets in its message text, its extras and its exception.
    foreign = logging.getLogger("some.library")
    foreign.warning(
        "retrying GET /v2/users with Authorization: Bearer sk-secret-123 body access_token=abc"
    )
    foreign.warning(
        'token response {"refresh_token": "abc-secret-456"} from %s',
        "postgresql://worker:pw-secret-789@db:5432/zoom",
        extra={"client_secret": "kw-secret-0", "attempt": 2},
    )
    try:
        raise RuntimeError("refused: Bearer sk-secret-123")
    except RuntimeError:
        foreign.exception("call failed")
    # structlog's own loggers still work as before, with the same scrubbing.
    structlog.get_logger("worker.test").info("structlog_line", access_token="abc", n=1)


asyncio.run(kafka_bootstrap())
asyncio.run(failing_app())
foreign_lines()
"""


def run_child(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={**os.environ, "LOG_FORMAT": fmt, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    for secret in SECRETS:
        assert secret not in done.stderr, f"{secret!r} reached the output"
    return [line for line in done.stderr.splitlines() if line.strip()]


def test_json_every_line_is_structured_and_scrubbed() -> None:
    lines = run_child("json")
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys(), record

    by_logger: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_logger.setdefault(record.get("logger", "<structlog>"), []).append(record)

    aiokafka = by_logger.get("aiokafka", [])
    assert any(
        r["level"] == "error" and r["event"].startswith("Unable connect to") for r in aiokafka
    ), records
    (uvicorn,) = by_logger["uvicorn.error"]
    assert uvicorn["level"] == "error"
    assert uvicorn["event"] == "Exception in ASGI application"
    assert "RuntimeError: upstream said: Bearer [redacted]" in uvicorn["exception"]

    foreign = by_logger["some.library"]
    assert foreign[0]["event"] == (
        "retrying GET /v2/users with Authorization: Bearer [redacted] body access_token=[redacted]"
    )
    assert foreign[1]["event"] == (
        'token response {"refresh_token": "[redacted]"} from '
        "postgresql://worker:[redacted]@db:5432/zoom"
    )
    assert foreign[1]["client_secret"] == "[redacted]"
    assert foreign[1]["attempt"] == 2
    assert foreign[2]["event"] == "call failed"
    assert "RuntimeError: refused: Bearer [redacted]" in foreign[2]["exception"]

    (own,) = [r for r in records if r["event"] == "structlog_line"]
    assert own == {
        "event": "structlog_line",
        "level": "info",
        "timestamp": own["timestamp"],
        "access_token": "[redacted]",
        "n": 1,
    }


def test_console_lines_are_not_json_and_still_scrubbed() -> None:
    lines = run_child("console")
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)
    text = "\n".join(lines)
    assert "Unable connect to" in text
    assert "[aiokafka]" in text
    assert "Exception in ASGI application" in text
    assert "[uvicorn.error]" in text
    assert "Bearer [redacted]" in text
    assert "structlog_line" in text


def test_a_repeated_foreign_line_is_let_through_once_per_window_with_its_count() -> None:
    import logging

    from worker.runtime.logging import RepeatFilter

    now = [0.0]
    flood = RepeatFilter(window=10, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, (1,), None)

    passed = [flood.filter(record("Unable connect to node with id %s")) for _ in range(5000)]
    other = flood.filter(record("Unable to update metadata from %s"))
    now[0] = 10.5
    later = record("Unable connect to node with id %s")

    assert passed.count(True) == 1 and other
    assert flood.filter(later) and getattr(later, "repeated", None) == 4999


JWT = "eyJhbGciOiJIUzUxMiJ9.eyJ2ZXIiOjcsImF1aWQiOiJhYmMifQ.c2lnbmF0dXJlLV8"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"zoom answered {JWT} for u1", "zoom answered [redacted] for u1"),
        (JWT.split(".")[0], "[redacted]"),  # an identifier, yet a token's header
        (f"grants=({JWT}, {JWT})", "grants=([redacted], [redacted])"),
        ("message", "message"),
        ("keyJabcdefghijk", "keyJabcdefghijk"),  # "eyJ" inside a word is not a token
    ],
)
def test_a_bare_jwt_in_free_text_is_redacted(text: str, scrubbed: str) -> None:
    assert scrub_text(text) == scrubbed
