"""Dead-letter records keep the original headers and add ours after them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.dead_letter import (
    DETAIL_MAX_BYTES,
    DLQ_ERROR,
    DLQ_FAILED_AT,
    DLQ_HEADERS,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    dead_letter_headers,
)
from schemas.headers import message_headers

ORIGINAL = [("traceparent", b"00-abc-def-01"), ("message-type", b"event.created")]


def test_original_headers_come_first_untouched_then_ours() -> None:
    at = datetime(2025, 3, 5, 11, 41, 12, tzinfo=timezone(timedelta(hours=1)))
    headers = dead_letter_headers(
        ORIGINAL,
        topic="event.created",
        partition=3,
        offset=18842,
        reason="invalid_event",
        detail="start: not an RFC 3339 time",
        failed_at=at,
    )
    assert headers[:2] == ORIGINAL
    assert dict(headers[2:]) == {
        DLQ_SOURCE_TOPIC: b"event.created",
        DLQ_SOURCE_PARTITION: b"3",
        DLQ_SOURCE_OFFSET: b"18842",
        DLQ_REASON: b"invalid_event",
        DLQ_ERROR: b"start: not an RFC 3339 time",
        DLQ_FAILED_AT: b"2025-03-05T10:41:12Z",
    }
    assert [name for name, _ in headers[2:]] == list(DLQ_HEADERS)


def test_no_original_headers() -> None:
    headers = dead_letter_headers(
        None, topic="t", partition=0, offset=0, reason="r", detail="", failed_at=datetime.now(UTC)
    )
    assert [name for name, _ in headers] == list(DLQ_HEADERS)


def test_long_detail_is_cut_on_a_character_boundary() -> None:
    headers = dict(
        dead_letter_headers(
            [], topic="t", partition=0, offset=0, reason="r", detail="é" * 5000,
            failed_at=datetime.now(UTC),
        )
    )  # fmt: skip
    detail = headers[DLQ_ERROR]
    assert len(detail) <= DETAIL_MAX_BYTES
    assert detail.decode() == "é" * (DETAIL_MAX_BYTES // 2)


def test_failed_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dead_letter_headers(
            [], topic="t", partition=0, offset=0, reason="r", detail="", failed_at=datetime.now()
        )


def test_message_headers() -> None:
    assert message_headers("meeting.linked") == [
        ("message-type", b"meeting.linked"),
        ("schema-version", b"1"),
        ("content-type", b"application/json"),
    ]
