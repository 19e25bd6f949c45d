"""Crashes, SIGTERM and rebalances: no result lost, never a second meeting for one event."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
from devservices import KafkaService
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"r-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        zoom.daily_limit = 100_000
        yield p


@pytest.fixture(autouse=True)
def no_faults(zoom: ZoomEmulator) -> None:
    zoom.faults = []


def meetings_of(pipeline: Pipeline, event_id: str) -> list[int]:
    return [m.id for m in pipeline.zoom.meetings(pipeline.zoom_users["ana"])
            if m.topic.startswith(event_id)]  # fmt: skip


@pytest.mark.parametrize("step", ["after_intent", "after_zoom", "after_db", "after_publish"])
async def test_a_crash_at_any_step_loses_nothing_and_doubles_nothing(
    pipeline: Pipeline, step: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    crashing = pipeline.worker(crash_at=step)
    crashing.start()
    source = event(ev, 1, title=f"{ev} interview")
    await pipeline.sender.send("created", source)
    assert crashing.wait(60) == -signal.SIGKILL
    survivor = pipeline.worker()
    survivor.start()
    try:
        results = await pipeline.results.wait_for(ev, 1, timeout=60)
        await pipeline.results.settle(1.0)
        results = pipeline.results.for_event(ev)
    finally:
        assert survivor.stop() == 0, survivor.log()[-2000:]
    assert len(meetings_of(pipeline, ev)) == 1
    assert {r["meeting"]["id"] for r in results} == set(meetings_of(pipeline, ev))
    # A result published twice carries the same id: consumers can drop the copy.
    assert {r["message_id"] for r in results} == {results[0]["message_id"]}
    assert all(r["correlation_id"] == source["message_id"] for r in results)


async def test_a_crash_while_cancelling_still_cancels(pipeline: Pipeline) -> None:
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    worker = pipeline.worker()
    worker.start()
    await pipeline.sender.send("created", event(ev, 1, title=f"{ev} interview"))
    await pipeline.results.wait_for(ev, 1, timeout=60)
    worker.stop()
    crashing = pipeline.worker(crash_at="after_zoom")
    crashing.start()
    await pipeline.sender.send("deleted", event(ev, 2, deleted=True))
    assert crashing.wait(60) == -signal.SIGKILL
    survivor = pipeline.worker()
    survivor.start()
    try:
        _, cancelled = await pipeline.results.wait_for(ev, 2, timeout=60)
    finally:
        survivor.stop()
    assert cancelled["action"] == "cancelled"
    assert meetings_of(pipeline, ev) == []


async def test_zoom_worker_run_ignores_a_crash_point_in_its_environment(
    pipeline: Pipeline,
) -> None:
    # Only the dev tooling's worker arms crash points; production reads no such variable.
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    worker = pipeline.worker(ZOOM_WORKER_CRASH_AT="after_intent")
    worker.start()
    try:
        await pipeline.sender.send("created", event(ev, 1, title=f"{ev} interview"))
        (linked,) = await pipeline.results.wait_for(ev, 1, timeout=60)
    finally:
        assert worker.stop() == 0, worker.log()[-2000:]
    assert linked["action"] == "created"
    assert len(meetings_of(pipeline, ev)) == 1


async def test_sigterm_mid_stream_finishes_in_flight_and_the_next_worker_resumes(
    pipeline: Pipeline,
) -> None:
    pipeline.zoom.faults = [Fault(kind="latency", latency_ms=40)]
    events = [f"ev-{uuid.uuid4().hex[:10]}" for _ in range(60)]
    first = pipeline.worker(MAX_IN_FLIGHT="4")
    first.start()
    await pipeline.sender.send_all(
        ("created", event(ev, 1, title=f"{ev} interview")) for ev in events
    )
    await pipeline.results.until(
        lambda: sum(bool(pipeline.results.for_event(e)) for e in events) >= 5
    )
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    second = pipeline.worker()
    second.start()
    try:
        for ev in events:
            await pipeline.results.wait_for(ev, 1, timeout=60)
    finally:
        assert second.stop() == 0
    for ev in events:
        assert len(meetings_of(pipeline, ev)) == 1, ev


async def test_two_workers_share_the_stream_through_a_rebalance(pipeline: Pipeline) -> None:
    pipeline.zoom.faults = [Fault(kind="latency", latency_ms=20)]
    events = [f"ev-{uuid.uuid4().hex[:10]}" for _ in range(90)]
    a = pipeline.worker(MAX_IN_FLIGHT="4")
    a.start()
    b = pipeline.worker(MAX_IN_FLIGHT="4")
    try:
        await pipeline.sender.send_all(
            ("created", event(ev, 1, title=f"{ev} interview")) for ev in events[:45]
        )
        await pipeline.results.until(lambda: any(pipeline.results.for_event(e) for e in events))
        b.start()  # joins mid-stream: the group rebalances
        await asyncio.sleep(0.5)
        await pipeline.sender.send_all(
            ("updated", event(ev, 2, title=f"{ev} moved")) for ev in events[:45]
        )
        await pipeline.sender.send_all(
            ("created", event(ev, 1, title=f"{ev} interview")) for ev in events[45:]
        )
        for ev in events[:45]:
            await pipeline.results.wait_for(ev, 2, timeout=90)
        for ev in events[45:]:
            await pipeline.results.wait_for(ev, 1, timeout=90)
    finally:
        a_code, b_code = a.stop(), b.stop()
    assert (a_code, b_code) == (0, 0)
    assert "partitions_assigned" in b.log()
    for ev in events:
        assert len(meetings_of(pipeline, ev)) == 1, ev
        ids = {r["meeting"]["id"] for r in pipeline.results.for_event(ev)}
        assert len(ids) == 1
