"""A message the worker fails on every time is parked, and its partition flows on.

Real parts only: a worker process, the session's broker and Postgres, the Zoom emulator. The
failures are real ones, not stand-ins:

- Postgres refuses the event's row: a trigger this test puts on ``event_links`` raises for
  event ids starting ``poison-`` (as a constraint added by hand, or a corrupt index, would);
- a stored result is corrupt: the test overwrites one event's ``last_result`` with bytes that
  are not a result, then sends a stale copy, which the worker answers from that stored result.

Each is retried in-process, parked on the dead-letter topic untouched (``processing_error``,
``x-dlq-exception``), answered with a ``meeting.failed``; later messages on the same partition
are processed, the worker stays up, and the group's offset moves past the parked record.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import PARTITIONS, WorkerProcess, event, until
from worker.pipeline.results import parked_message_id

POISON_TRIGGER = """
CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$
BEGIN
    IF NEW.event_id LIKE 'poison-%' THEN
        RAISE EXCEPTION 'row refused for this test';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS refuse_poison ON event_links;
CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON event_links
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(POISON_TRIGGER)
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        zoom.daily_limit = 100_000
        zoom.faults = []
        p.port = free_port()
        worker = p.worker(HTTP_PORT=str(p.port))
        worker.start()
        try:
            await until(partial(ready, p.port), timeout=60)
            yield p
        finally:
            assert worker.stop() == 0, worker.log()[-3000:]


def partition_of(event_id: str) -> int:
    partitions = list(range(PARTITIONS))
    return int(DefaultPartitioner()(event_id.encode(), partitions, partitions))


def ids_on(partition: int, prefix: str, count: int) -> list[str]:
    """``count`` fresh event ids whose records land on ``partition``."""
    found: list[str] = []
    while len(found) < count:
        candidate = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if partition_of(candidate) == partition:
            found.append(candidate)
    return found


def meetings_of(pipeline: Pipeline, event_id: str) -> list[Any]:
    return [m for m in pipeline.zoom.meetings(pipeline.zoom_users["ana"])
            if m.topic.startswith(event_id)]  # fmt: skip


def metric(port: int, name: str, **labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def dead_letter(pipeline: Pipeline, source: dict[str, Any]) -> list[dict[str, bytes]]:
    value = json.dumps(source).encode()
    return [h for h in pipeline.results.dead_letters() if h["__value__"] == value]


async def committed_to_the_end(kafka: KafkaService, group: str, tp: TopicPartition) -> None:
    """The group's committed offset on ``tp`` reaches its end (the admin API; real Kafka)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + 20
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            if tp in offsets and offsets[tp].offset == end:
                return
            assert time.monotonic() < deadline, (end, offsets)
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await admin.close()


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def worker_of(pipeline: Pipeline) -> WorkerProcess:
    (worker,) = pipeline.workers
    return worker


async def test_a_row_postgres_refuses_is_parked_and_the_partition_flows_on(
    pipeline: Pipeline, kafka: KafkaService
) -> None:
    poison_id = f"poison-{uuid.uuid4().hex[:10]}"
    partition = partition_of(poison_id)
    marker = f"secret-title-{uuid.uuid4().hex[:8]}"  # must never reach the log
    poison = event(poison_id, 1, title=marker)
    after = ids_on(partition, "ev", 5)
    worker = worker_of(pipeline)
    before = metric(
        pipeline.port, "zoom_worker_poison_messages_total", topic=pipeline.topics.created
    )

    await pipeline.sender.send("created", poison)
    for ev in after:
        await pipeline.sender.send("created", event(ev, 1, title=f"{ev} interview"))

    # The later messages on the same partition are linked, the poison one is answered.
    for ev in after:
        (linked,) = await pipeline.results.wait_for(ev, 1, timeout=60)
        assert linked["action"] == "created"
    (failed,) = await pipeline.results.wait_for(poison_id, 1, timeout=30)
    assert failed["reason"] == "processing_error"
    assert failed["retryable"] is True
    assert failed["correlation_id"] == poison["message_id"]
    # Its own id: the outcome of a replay follows under result_message_id.
    assert failed["message_id"] == parked_message_id(poison["message_id"])
    assert failed["action"] == "create"
    await pipeline.results.until(lambda: bool(dead_letter(pipeline, poison)), timeout=30)
    (parked,) = dead_letter(pipeline, poison)
    assert parked["x-dlq-reason"] == b"processing_error"
    assert parked["x-dlq-exception"] == b"RaiseException"  # Postgres's RAISE, by class name
    assert parked["x-dlq-source-topic"] == pipeline.topics.created.encode()
    assert parked["x-dlq-source-partition"] == str(partition).encode()

    assert worker.process is not None and worker.process.poll() is None  # still running
    assert meetings_of(pipeline, poison_id) == []  # refused before Zoom was called
    for ev in after:
        assert len(meetings_of(pipeline, ev)) == 1
    assert (
        metric(pipeline.port, "zoom_worker_poison_messages_total", topic=pipeline.topics.created)
        == before + 1
    )
    log = worker.log()
    assert log.count('"poison_message"') == 1, log[-3000:]  # one line, with its coordinates
    assert marker not in log
    if kafka.is_apache_kafka:  # Tansu has no group-offset admin API
        tp = TopicPartition(pipeline.topics.created, partition)
        await committed_to_the_end(kafka, pipeline.env["KAFKA_GROUP_ID"], tp)


async def test_a_corrupt_stored_result_is_parked_and_a_newer_revision_repairs_it(
    pipeline: Pipeline,
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    await pipeline.sender.send("created", event(ev, 2, title=f"{ev} interview"))
    await pipeline.results.wait_for(ev, 1, timeout=60)
    database_url = pipeline.env["DATABASE_URL"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE event_links SET last_result = 'not a result' WHERE event_id = %s", (ev,)
        )

    stale = event(ev, 1, title=f"{ev} old")  # answered from the stored result: which is corrupt
    await pipeline.sender.send("updated", stale)
    failed = (await pipeline.results.wait_for(ev, 2, timeout=30))[1]
    assert (failed["reason"], failed["correlation_id"]) == ("processing_error", stale["message_id"])
    await pipeline.results.until(lambda: bool(dead_letter(pipeline, stale)), timeout=30)
    (parked,) = dead_letter(pipeline, stale)
    assert parked["x-dlq-exception"] == b"ContractError"

    # A newer revision does not read the stored result: it goes through and stores a good one.
    await pipeline.sender.send("updated", event(ev, 3, title=f"{ev} moved", shift_minutes=30))
    updated = (await pipeline.results.wait_for(ev, 3, timeout=30))[2]
    assert (updated["action"], updated["revision"]) == ("updated", 3)
    assert len(meetings_of(pipeline, ev)) == 1
    worker = worker_of(pipeline)
    assert worker.process is not None and worker.process.poll() is None
