"""``zoom-worker dlq replay``: re-drive parked records onto the topics they came from.

Reads the dead-letter topic in its own consumer group up to the end offsets seen at start,
re-publishes each chosen record's original key, value and headers (our ``x-dlq-*`` headers
stripped) to its source topic, and commits after each record, so an interrupted replay resumes
where it stopped. Records of other reasons are skipped and committed past.

The source topic is read from the record's own ``x-dlq-source-topic`` header, which anyone who
can write to the dead-letter topic can set; so a record is re-published only when that names
one of ``source_topics`` (the configured event topics). Any other (a result topic, the
dead-letter topic itself, no header at all) is refused: logged (``dlq_replay_refused``, with
the record's place and the name it gave), counted, committed past, never published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from structlog.stdlib import get_logger

from schemas.dead_letter import DLQ_ALL_HEADERS, DLQ_REASON, DLQ_SOURCE_TOPIC

log = get_logger("worker.runtime.replay")

_TOPIC_NAME_MAX = 249  # Kafka's own limit: longer is not a topic name, only shown cut


@dataclass(frozen=True)
class ReplayReport:
    replayed: int  # re-published to their (allowed) source topic
    skipped: int  # not chosen: another reason than asked for
    refused: int = 0  # chosen, but naming no allowed source topic: never published


async def replay(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    dead_letter_topic: str,
    *,
    source_topics: Collection[str],
    reasons: frozenset[str] | None = None,
    limit: int | None = None,
) -> ReplayReport:
    """Re-publish the chosen records whose source topic is one of ``source_topics``.

    Consumer and producer are started by the caller; the consumer has a group id. ``limit``
    counts re-published records only.
    """
    allowed = frozenset(source_topics)
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
    replayed = skipped = refused = 0
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
                source = _text(found.get(DLQ_SOURCE_TOPIC))
                if reasons is not None and _text(found.get(DLQ_REASON)) not in reasons:
                    skipped += 1
                elif source not in allowed:
                    refused += 1
                    log.warning(
                        "dlq_replay_refused",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        source_topic=source and source[:_TOPIC_NAME_MAX],
                        allowed=sorted(allowed),
                    )
                else:
                    assert source is not None
                    original = [(k, v) for k, v in headers if k not in DLQ_ALL_HEADERS]
                    await producer.send_and_wait(
                        source, record.value, key=record.key, headers=original
                    )
                    replayed += 1
                await consumer.commit({tp: record.offset + 1})
        await asyncio.sleep(0)
    return ReplayReport(replayed, skipped, refused)


def _text(header: bytes | None) -> str | None:
    """A header's value as text; bytes that are not UTF-8 (a hostile record's) never raise."""
    return None if header is None else header.decode("utf-8", "replace")
