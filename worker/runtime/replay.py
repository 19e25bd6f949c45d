"""``zoom-worker dlq replay``: re-drive parked records onto the topics they came from.

Reads the dead-letter topic in its own consumer group up to the end offsets seen at start,
re-publishes each chosen record's original key, value and headers (our ``x-dlq-*`` headers
stripped) to its source topic, and commits after each batch, so an interrupted replay resumes
where it stopped. Records of other reasons are skipped and committed past.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.dead_letter import DLQ_ALL_HEADERS, DLQ_REASON, DLQ_SOURCE_TOPIC


@dataclass(frozen=True)
class ReplayReport:
    replayed: int
    skipped: int


async def replay(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    dead_letter_topic: str,
    *,
    reasons: frozenset[str] | None = None,
    limit: int | None = None,
) -> ReplayReport:
    """Consumer and producer are started by the caller; the consumer has a group id."""
    partitions = consumer.partitions_for_topic(dead_letter_topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(dead_letter_topic) or set()
    assigned = [TopicPartition(dead_letter_topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    ends = await consumer.end_offsets(assigned)
    for tp in assigned:
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
    replayed = skipped = 0
    while True:
        pending = [tp for tp in assigned if await consumer.position(tp) < ends[tp]]
        if not pending or (limit is not None and replayed >= limit):
            break
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if record.offset >= ends[tp] or (limit is not None and replayed >= limit):
                    break
                headers = list(record.headers or ())
                found = {k: v for k, v in headers}
                source = found.get(DLQ_SOURCE_TOPIC)
                reason = found.get(DLQ_REASON, b"").decode()
                if source is None or (reasons is not None and reason not in reasons):
                    skipped += 1
                else:
                    original = [(k, v) for k, v in headers if k not in DLQ_ALL_HEADERS]
                    await producer.send_and_wait(
                        source.decode(), record.value, key=record.key, headers=original
                    )
                    replayed += 1
                await consumer.commit({tp: record.offset + 1})
        await asyncio.sleep(0)
    return ReplayReport(replayed, skipped)
