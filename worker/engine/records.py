"""What the engine hands to a handler: one source record, and the handler's contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ConsumedRecord:
    """One consumed Kafka record, detached from aiokafka's types."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


class RecordHandler(Protocol):
    async def __call__(self, record: ConsumedRecord) -> None:
        """Handle one record completely: its result is published (flushed) when this returns.

        Must not raise for bad input or Zoom failures (the handler turns those into published
        results); anything it raises is a bug: the engine logs it, does not commit that offset,
        and stops the worker (exit non-zero) so the record is redelivered after restart. May be
        cancelled at shutdown or on a rebalance after the grace period; it must then let the
        cancellation through (the engine waits for it).
        """


def record_from(consumed: Any) -> ConsumedRecord:
    """Translate an aiokafka ``ConsumerRecord`` (consumed without deserializers)."""
    return ConsumedRecord(
        topic=consumed.topic,
        partition=consumed.partition,
        offset=consumed.offset,
        key=consumed.key,
        value=consumed.value,
        headers=tuple((name, bytes(value)) for name, value in consumed.headers or ()),
        timestamp_ms=consumed.timestamp,
    )
