"""Control characters in ids and titles, end to end: refused, reported, parked, and no stall.

U+0000 cannot be stored in Postgres text: a worker that let one through to the link store
would fail on that record at every redelivery. The contract refuses it at the edge instead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"h-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        p.port = free_port()
        worker = p.worker(HTTP_PORT=str(p.port))
        worker.start()
        try:
            yield p
        finally:
            assert worker.stop() == 0, worker.log()[-3000:]


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


async def parked(pipeline: Pipeline, source: dict[str, Any]) -> dict[str, bytes]:
    value = json.dumps(source).encode()
    found: list[dict[str, bytes]] = []

    def seen() -> bool:
        found[:] = [h for h in pipeline.results.dead_letters() if h["__value__"] == value]
        return bool(found)

    await pipeline.results.until(seen, timeout=30)
    (headers,) = found
    assert headers["x-dlq-reason"] == b"invalid_event"
    return headers


async def still_links(
    pipeline: Pipeline, ev: str, revision: int, seen: int, key: str | None = None
) -> None:
    """The partition moves on: a valid message for ``ev`` after the hostile one is linked."""
    await pipeline.sender.send("updated", event(ev, revision), key=key)
    results = await pipeline.results.wait_for(ev, seen + 1)
    assert results[-1]["action"] == "created", results[-1]


async def test_a_nul_in_the_title_is_reported_and_parked(pipeline: Pipeline) -> None:
    ev = new_event_id()
    source = event(ev, 1, title="Inter\x00view")
    await pipeline.sender.send("created", source)
    (failed,) = await pipeline.results.wait_for(ev, 1)
    assert (failed["reason"], failed["retryable"]) == ("invalid_event", False)
    assert (failed["correlation_id"], failed["action"]) == (source["message_id"], "create")
    headers = await parked(pipeline, source)
    assert headers["x-dlq-error"] == b"title: must not contain control characters"
    await still_links(pipeline, ev, 2, seen=1)


async def test_a_nul_in_the_event_id_is_parked(pipeline: Pipeline) -> None:
    ev = new_event_id()
    hostile = f"{ev}\x00"
    source = event(hostile, 1)  # the record key carries the NUL as well
    await pipeline.sender.send("created", source)
    headers = await parked(pipeline, source)
    assert headers["x-dlq-error"] == b"event_id: must not contain control characters"
    # No meeting.failed: it would need the event's id, and this one can be carried nowhere.
    await pipeline.results.settle(0.5)
    assert pipeline.results.for_event(hostile) == []
    await still_links(pipeline, ev, 2, seen=0, key=hostile)  # same key: same partition


async def test_a_control_character_in_the_message_id_is_reported_by_offset(
    pipeline: Pipeline,
) -> None:
    ev = new_event_id()
    source = event(ev, 1, message_id=f"msg-{uuid.uuid4().hex[:8]}\x1f")
    await pipeline.sender.send("created", source)
    (failed,) = await pipeline.results.wait_for(ev, 1)
    assert failed["reason"] == "invalid_event"
    # The source's own message_id is unusable, so the answer names the record instead.
    topic, partition, offset = failed["correlation_id"].rsplit("/", 2)
    assert topic == pipeline.topics.created and partition.isdigit() and offset.isdigit()
    headers = await parked(pipeline, source)
    assert headers["x-dlq-error"] == b"message_id: must not contain control characters"
    await still_links(pipeline, ev, 2, seen=1)
