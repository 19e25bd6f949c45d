"""Headers a dead-letter record carries on top of the original record's own.

A dead-letter record keeps the original key, value and headers byte for byte, so it can be
replayed onto its source topic as it was; ours are appended after them. A record dead-lettered
twice carries two sets: the last one is the latest.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

DLQ_SOURCE_TOPIC: Final = "x-dlq-source-topic"
DLQ_SOURCE_PARTITION: Final = "x-dlq-source-partition"
DLQ_SOURCE_OFFSET: Final = "x-dlq-source-offset"
DLQ_REASON: Final = "x-dlq-reason"
DLQ_ERROR: Final = "x-dlq-error"
DLQ_FAILED_AT: Final = "x-dlq-failed-at"
# Only on records parked as processing_error, after the others: the exception's class name.
# Not one of DLQ_HEADERS (those every dead letter carries); asyncapi.yaml names it in prose.
DLQ_EXCEPTION: Final = "x-dlq-exception"

DLQ_HEADERS: Final = (
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_REASON,
    DLQ_ERROR,
    DLQ_FAILED_AT,
)
"""The headers every dead-letter record carries, in this order."""

DLQ_ALL_HEADERS: Final = (*DLQ_HEADERS, DLQ_EXCEPTION)
"""Every header of ours a dead-letter record may carry (what a replay strips)."""

DETAIL_MAX_BYTES: Final = 2000


def dead_letter_headers(
    original_headers: Iterable[tuple[str, bytes]] | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    detail: str,
    failed_at: datetime,
    exception: str | None = None,
) -> list[tuple[str, bytes]]:
    """The original headers, untouched, followed by ours (all UTF-8 text).

    ``detail`` is cut to ``DETAIL_MAX_BYTES``; it must already be free of tokens and secrets.
    ``failed_at`` must be timezone-aware and is written as RFC 3339 in UTC. ``exception`` (a
    class name) adds ``x-dlq-exception`` last.
    """
    if failed_at.utcoffset() is None:
        raise ValueError("failed_at must be timezone-aware")
    at = failed_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return [
        *(original_headers or ()),
        (DLQ_SOURCE_TOPIC, topic.encode()),
        (DLQ_SOURCE_PARTITION, str(partition).encode()),
        (DLQ_SOURCE_OFFSET, str(offset).encode()),
        (DLQ_REASON, reason.encode()),
        (DLQ_ERROR, _cut(detail, DETAIL_MAX_BYTES)),
        (DLQ_FAILED_AT, at.encode()),
        *([(DLQ_EXCEPTION, _cut(exception, 200))] if exception is not None else []),
    ]


def _cut(text: str, limit: int) -> bytes:
    raw = text.encode()
    if len(raw) <= limit:
        return raw
    # Cut on a character boundary so the header stays valid UTF-8.
    return raw[:limit].decode(errors="ignore").encode()
