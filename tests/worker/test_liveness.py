"""``/healthz`` fails when the consume loop is stuck with work, and only then.

The rule is checked case by case (``stall_liveness``), then on worker processes against the
broker, Postgres and the Zoom emulator: idle for longer than the stall time it stays alive;
stuck on a Zoom call that hangs it answers 503 (and /metrics shows the stuck message in the
committed lag and the oldest age, not in the fetch lag), then recovers by itself; waiting out
a Postgres outage it stays alive.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.faultproxy import FaultProxy
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault
from prometheus_client.parser import text_string_to_metric_families

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import WorkerProcess, event
from worker.runtime.health import stall_liveness

STALL_SECONDS = 2.0


@pytest.mark.parametrize(
    ("age", "has_work", "down", "alive"),
    [
        pytest.param(1.0, True, [], True, id="busy-and-moving"),
        pytest.param(9.0, False, [], True, id="idle-for-long"),
        pytest.param(9.0, True, [], False, id="stuck-with-work"),
        pytest.param(9.0, True, ["database"], True, id="stuck-during-an-outage"),
    ],
)
def test_only_a_loop_stuck_with_work_and_no_outage_is_dead(
    age: float, has_work: bool, down: list[str], alive: bool
) -> None:
    verdict = stall_liveness(
        progress_age_seconds=age, has_work=has_work, stall_seconds=5, dependencies_down=down
    )
    assert verdict.alive is alive
    assert verdict.detail["progress_age_seconds"] == age
    assert ("waiting_for" in verdict.detail) is bool(down)


# -- worker processes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"lv-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        yield p


@pytest.fixture(autouse=True)
def calm_zoom(zoom: ZoomEmulator) -> Iterator[None]:
    zoom.faults = []
    yield
    zoom.faults = []


def start_worker(pipeline: Pipeline, **env: str) -> tuple[WorkerProcess, int]:
    port = free_port()
    worker = pipeline.worker(HTTP_PORT=str(port), LIVENESS_STALL_SECONDS=str(STALL_SECONDS), **env)
    worker.start()
    return worker, port


async def get(port: int, path: str) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{port}{path}")
    body = response.text if path == "/metrics" else response.json()
    return response.status_code, body


async def wait_for(port: int, path: str, status: int, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, body = await get(port, path)
            if code == status:
                return body
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never answered {status}")
        await asyncio.sleep(0.1)


async def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    _, text = await get(port, "/metrics")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def of(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> dict[Any, float]:
    """The samples of ``name``, by their topic and partition labels."""
    return {
        (dict(labels).get("topic"), dict(labels).get("partition")): v
        for (n, labels), v in found.items()
        if n == name
    }


async def test_idle_is_alive_and_a_loop_stuck_on_zoom_is_not(pipeline: Pipeline) -> None:
    worker, port = start_worker(pipeline)
    try:
        await wait_for(port, "/readyz", 200)
        idle_until = time.monotonic() + 2 * STALL_SECONDS
        while time.monotonic() < idle_until:
            code, body = await get(port, "/healthz")
            assert (code, body["status"], body["has_work"]) == (200, "ok", False), body
            await asyncio.sleep(0.2)
        found = await samples(port)
        (progress,) = of(found, "zoom_worker_consumer_progress_age_seconds").values()
        assert progress < STALL_SECONDS, "an idle loop polls: that is progress"
        pool = {
            dict(labels)["state"]: v
            for (n, labels), v in found.items()
            if n == "zoom_worker_db_pool_connections"
        }
        ceiling = found[("zoom_worker_db_pool_max_connections", frozenset())]
        assert 2 <= pool["size"] <= ceiling and pool["idle"] >= 1, (pool, ceiling)

        # Every Zoom call now hangs for 12 s: the client gives up after its 10 s timeout (the
        # emulator's answer comes soon after, so it holds no request past this test).
        pipeline.zoom.faults = [Fault(kind="latency", latency_ms=12_000)]
        ev = f"ev-{uuid.uuid4().hex[:10]}"
        await pipeline.sender.send("created", event(ev, 1, organizer="ana"))
        body = await wait_for(port, "/healthz", 503, timeout=STALL_SECONDS + 6)
        assert body["status"] == "stalled" and body["in_flight"] == 1, body
        # (rounded to 0.1 s in the body)
        assert body["progress_age_seconds"] >= STALL_SECONDS and body["committed_lag"] >= 1

        found = await samples(port)
        ages = of(found, "zoom_worker_oldest_unfinished_age_seconds")
        stuck = [partition for partition, age in ages.items() if age > STALL_SECONDS]
        assert len(stuck) == 1, ages
        (partition,) = stuck
        assert of(found, "zoom_worker_consumergroup_lag")[partition] >= 1
        assert of(found, "zoom_worker_partition_lag")[partition] == 0, "fetch lag misses it"

        pipeline.zoom.faults = []
        await wait_for(port, "/healthz", 200, timeout=30)  # the call timed out, the loop moves
        await pipeline.results.wait_for(ev, 1)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


async def test_a_loop_waiting_out_a_database_outage_stays_alive(
    pipeline: Pipeline, database_url: str
) -> None:
    parts = urlsplit(database_url)
    assert parts.hostname is not None and parts.port is not None
    with FaultProxy(parts.hostname, parts.port) as proxy:
        host = parts.netloc.rsplit(":", 1)[0]
        proxied = urlunsplit(parts._replace(netloc=f"{host}:{proxy.port}"))
        worker, port = start_worker(pipeline, DATABASE_URL=proxied)
        try:
            await wait_for(port, "/readyz", 200)
            proxy.cut()
            down = await wait_for(port, "/readyz", 503, timeout=10)
            assert down["checks"]["database"] is False

            ev = f"ev-{uuid.uuid4().hex[:10]}"
            await pipeline.sender.send("created", event(ev, 1, organizer="ana"))
            excused = []
            until = time.monotonic() + 2 * STALL_SECONDS + 1
            while time.monotonic() < until:
                code, body = await get(port, "/healthz")
                assert code == 200, body
                if body.get("waiting_for"):
                    excused.append(body)
                await asyncio.sleep(0.2)
            assert excused, "the message never looked stalled: nothing was tested"
            assert excused[-1]["waiting_for"] == ["database"] and excused[-1]["in_flight"] == 1

            proxy.restore()
            (result,) = await pipeline.results.wait_for(ev, 1)
            assert result["action"] == "created"
            code, body = await get(port, "/healthz")
            assert code == 200 and "waiting_for" not in body
        finally:
            assert worker.stop() == 0, worker.log()[-3000:]
