"""``zoom-worker dlq replay`` re-publishes only onto the configured event topics.

A dead-letter record names its own source topic (``x-dlq-source-topic``), and anyone who can
write to the dead-letter topic can write that header. On a real broker: records naming a
result topic, the dead-letter topic itself, garbage or nothing are refused (logged, counted in
the summary, never published), while one naming an event topic is re-published as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from devservices import KafkaService
from devservices.kafka import create_topics

from schemas.dead_letter import DLQ_REASON, DLQ_SOURCE_TOPIC
from tests.worker.harness import Topics

Headers = list[tuple[str, bytes]]


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, Headers]]:
    """Every record of ``topic`` (one partition) up to its end: value and headers."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[tuple[bytes | None, Headers]] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                found += [(r.value, list(r.headers or ())) for r in records]
        return found
    finally:
        await consumer.stop()


async def test_replay_publishes_only_to_the_event_topics(kafka: KafkaService) -> None:
    topics = Topics(f"dlq-{uuid.uuid4().hex[:8]}")
    await create_topics(kafka.bootstrap_servers, topics.all(), partitions=1)

    def parked(source: bytes | None, reason: bytes = b"zoom_unavailable") -> Headers:
        ours = [(DLQ_REASON, reason)]
        return [("origin", b"calendar"), *ours, *([(DLQ_SOURCE_TOPIC, source)] if source else [])]

    records: dict[str, Headers] = {
        "event": parked(topics.created.encode()),
        "to-result-topic": parked(topics.linked.encode()),
        "to-dead-letters": parked(topics.dlq.encode()),
        "not-utf8-source": parked(b"\xff\xfe" + topics.created.encode()),
        "no-source": parked(None),
        "other-reason": parked(topics.linked.encode(), reason=b"invalid_message"),
        "not-utf8-reason": parked(topics.created.encode(), reason=b"\xff"),
    }
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for name, headers in records.items():
            value = json.dumps({"name": name}).encode()
            await producer.send_and_wait(topics.dlq, value, key=b"k", headers=headers)
    finally:
        await producer.stop()

    done = subprocess.run(
        [sys.executable, "-m", "worker", "dlq", "replay", "--reason", "zoom_unavailable"],
        env={**os.environ, **topics.env(), "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
             "KAFKA_GROUP_ID": f"g-{topics.prefix}", "LOG_FORMAT": "json"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("replayed 1 record(s), skipped 2, refused 4 "), done.stdout
    refusals = [json.loads(line) for line in done.stderr.splitlines()
                if '"dlq_replay_refused"' in line]  # fmt: skip
    assert sorted(str(r["source_topic"]) for r in refusals) == sorted(
        [topics.linked, topics.dlq, "\ufffd\ufffd" + topics.created, "None"]
    )
    assert all(r["topic"] == topics.dlq and r["level"] == "warning" for r in refusals)
    # Nothing reached the result topics; the event topic got its record back, as it was.
    assert await read_all(kafka.bootstrap_servers, topics.linked) == []
    assert await read_all(kafka.bootstrap_servers, topics.failed) == []
    assert await read_all(kafka.bootstrap_servers, topics.created) == [
        (b'{"name": "event"}', [("origin", b"calendar")])
    ]
    assert len(await read_all(kafka.bootstrap_servers, topics.dlq)) == len(records)
