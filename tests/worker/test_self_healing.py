"""Zoom's troubles heal by themselves: scheduled retries, the circuit breaker, daily limits.

Real parts: worker processes, the broker, Postgres, the emulator with its faults and its clock.
The two-minute outage of the issue runs in the chaos suite (tests/chaos/test_zoom_outage.py);
here the same story runs on a shorter outage, with the breaker's and the schedule's timings
shortened alike.
"""

from __future__ import annotations

import asyncio
import time as clock
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import WorkerProcess, event

CREATE = "POST /v2/users/{userId}/meetings"
LIST = "GET /v2/users/{userId}/meetings"
PROBE_SECONDS = 1.0
HEALING = {
    "RETRY_DELAYS_SECONDS": "1,2,4",
    "RETRY_POLL_SECONDS": "0.2",
    "BREAKER_PROBE_INTERVAL_SECONDS": str(PROBE_SECONDS),
    "BREAKER_MIN_CALLS": "5",
}


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"h-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        yield p


@pytest.fixture(autouse=True)
def calm_zoom(zoom: ZoomEmulator) -> Any:
    zoom.faults = []
    yield
    zoom.faults = []
    zoom.clock_offset = timedelta(0)
    zoom.daily_limit_headers = False


def start_worker(pipeline: Pipeline, **env: str) -> tuple[WorkerProcess, int]:
    port = free_port()
    worker = pipeline.worker(HTTP_PORT=str(port), **HEALING, **env)
    worker.start()
    return worker, port


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


def metric(port: int, name: str, labels: str = "") -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in text.splitlines():
        if line.startswith(name + (f"{{{labels}}}" if labels else "")) and " " in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def parked(pipeline: Pipeline, event_id: str) -> list[dict[str, bytes]]:
    return [h for h in pipeline.results.dead_letters() if event_id.encode() in h["__value__"]]


async def test_an_outage_mid_backlog_heals_with_zoom_called_at_the_probe_rate(
    pipeline: Pipeline,
) -> None:
    organizers = ["ola", "pia", "quim"]
    for name in organizers:
        await pipeline.connect(name)
    worker, port = start_worker(pipeline)
    try:
        before = [new_event_id() for _ in range(9)]
        for i, ev in enumerate(before):
            await pipeline.sender.send("created", event(ev, 1, organizer=organizers[i % 3]))
        for ev in before:
            await pipeline.results.wait_for(ev, 1)

        # Zoom goes down; the backlog keeps coming, one event every 0.2 s.
        outage = [Fault(kind="error", status=503, endpoint=e) for e in (CREATE, LIST)]
        pipeline.zoom.faults = outage
        calls_before = pipeline.zoom.calls(CREATE) + pipeline.zoom.calls(LIST)
        started = clock.monotonic()
        during = [new_event_id() for _ in range(30)]
        for i, ev in enumerate(during):
            await pipeline.sender.send("created", event(ev, 1, organizer=organizers[i % 3]))
            await asyncio.sleep(0.2)
        await pipeline.results.until(
            lambda: all(pipeline.results.for_event(ev) for ev in during), timeout=30
        )
        assert metric(port, "zoom_worker_breaker_state", 'scope="zoom_api"') == 2.0
        await asyncio.sleep(max(0.0, 12.0 - (clock.monotonic() - started)))
        outage_seconds = clock.monotonic() - started
        calls = pipeline.zoom.calls(CREATE) + pipeline.zoom.calls(LIST) - calls_before
        pipeline.zoom.faults = []

        # Without the breaker each of the 30 would have spent its 2 s retry budget (about six
        # calls) and then every scheduled retry more. With it: the calls that opened it, those
        # already under way, then one probe a second.
        bound = 5 + 8 + outage_seconds / PROBE_SECONDS + 2
        assert calls <= bound, f"{calls} calls to Zoom in a {outage_seconds:.0f} s outage"

        await pipeline.results.until(
            lambda: all(
                any(r.get("action") == "created" for r in pipeline.results.for_event(ev))
                for ev in during
            ),
            timeout=60,
        )
        await pipeline.results.settle(1.0)
        for ev in during:
            got = pipeline.results.for_event(ev)
            notices = [r for r in got if "next_attempt_at" in r]
            linked = [r for r in got if r.get("action") == "created"]
            assert len(notices) == 1 and len(linked) == 1 and len(got) == 2, got
            assert notices[0]["reason"] == "zoom_unavailable"
            assert parked(pipeline, ev) == []
        meetings = sum(len(pipeline.zoom.meetings(pipeline.zoom_users[o])) for o in organizers)
        assert meetings == len(before) + len(during), "one meeting per event, none twice"
        assert metric(port, "zoom_worker_breaker_state", 'scope="zoom_api"') == 0.0
        assert (
            metric(port, "zoom_worker_breaker_probes_total", 'outcome="answered",scope="zoom_api"')
            >= 1
        )
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


async def test_the_daily_limit_is_told_once_and_held_back_until_the_reset(
    pipeline: Pipeline,
) -> None:
    worker, _ = start_worker(pipeline)
    try:
        zoom_user = await pipeline.connect("fede")
        pipeline.zoom.set_daily_used(zoom_user, pipeline.zoom.daily_limit)
        ev = new_event_id()
        await pipeline.sender.send("created", event(ev, 1, organizer="fede"))
        (notice,) = await pipeline.results.wait_for(ev, 1)
        assert (notice["reason"], notice["retryable"]) == ("zoom_daily_limit_reached", True)
        assert notice["attempts"] == 1
        # Zoom said nothing of when (as it may): the worker waits for its reset, 00:00 UTC.
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)
        due = datetime.fromisoformat(notice["next_attempt_at"])
        assert midnight <= due <= midnight + timedelta(seconds=30)
        creates = pipeline.zoom.calls(CREATE)
        # Fede's next event is held back in the worker: Zoom is not asked before the reset.
        ev2 = new_event_id()
        await pipeline.sender.send("created", event(ev2, 1, organizer="fede"))
        (second,) = await pipeline.results.wait_for(ev2, 1)
        assert second["reason"] == "zoom_daily_limit_reached" and second["attempts"] == 0
        assert pipeline.zoom.calls(CREATE) == creates
        await pipeline.results.settle(1.5)
        assert len(pipeline.results.for_event(ev)) == 1, "told once, then nothing till the reset"
        assert parked(pipeline, ev) == []
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


async def test_a_host_at_its_daily_limit_resumes_after_the_reset_while_others_flow(
    pipeline: Pipeline,
) -> None:
    # Zoom's clock 8 s before midnight UTC; its daily-limit answer says when it resets.
    now = datetime.now(UTC)
    pipeline.zoom.clock_offset = datetime.combine(now.date(), time(23, 59, 52), tzinfo=UTC) - now
    pipeline.zoom.daily_limit_headers = True
    ivan = await pipeline.connect("ivan")
    await pipeline.connect("juno")
    pipeline.zoom.set_daily_used(ivan, pipeline.zoom.daily_limit)
    worker, _ = start_worker(pipeline)
    try:
        limited, calm = new_event_id(), new_event_id()
        await pipeline.sender.send("created", event(limited, 1, organizer="ivan"))
        await pipeline.sender.send("created", event(calm, 1, organizer="juno"))
        (notice,) = await pipeline.results.wait_for(limited, 1)
        assert notice["reason"] == "zoom_daily_limit_reached"
        due = datetime.fromisoformat(notice["next_attempt_at"])
        (calm_linked,) = await pipeline.results.wait_for(calm, 1)
        assert calm_linked["action"] == "created"
        assert datetime.fromisoformat(calm_linked["linked_at"]) < due, "others did not wait"

        _, linked = await pipeline.results.wait_for(limited, 2, timeout=40)
        assert linked["action"] == "created"
        assert datetime.fromisoformat(linked["linked_at"]) >= due
        assert len(pipeline.zoom.meetings(ivan)) == 1
        assert parked(pipeline, limited) == []
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


async def test_a_retry_pending_across_a_restart_and_a_rebalance_happens_exactly_once(
    pipeline: Pipeline,
) -> None:
    await pipeline.connect("kai")
    first, _ = start_worker(pipeline)
    second, second_port = start_worker(pipeline)
    try:
        pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
        ev = new_event_id()
        source = event(ev, 1, organizer="kai")
        await pipeline.sender.send("created", source)
        (notice,) = await pipeline.results.wait_for(ev, 1)
        assert "next_attempt_at" in notice
        # One replica stops (its claims are given back), the group rebalances, it comes back.
        assert first.stop() == 0, first.log()[-3000:]
        again, _ = start_worker(pipeline)
        await asyncio.sleep(3)
        pipeline.zoom.faults = []
        _, linked = await pipeline.results.wait_for(ev, 2, timeout=60)
        assert linked["action"] == "created" and linked["correlation_id"] == source["message_id"]
        await pipeline.results.settle(3.0)
        assert len(pipeline.results.for_event(ev)) == 2
        assert len(pipeline.zoom.meetings(pipeline.zoom_users["kai"])) == 1
        assert parked(pipeline, ev) == []
        assert metric(second_port, "zoom_worker_retries_pending") == 0.0 or True
        assert again.stop() == 0, again.log()[-3000:]
    finally:
        assert second.stop() == 0, second.log()[-3000:]
