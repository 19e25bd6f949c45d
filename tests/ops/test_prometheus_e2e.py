"""A real Prometheus scrapes a real worker through a scripted run; every dashboard panel has
data and the alerts that should fire do.

Real parts: Debian's Prometheus server, a worker process, the broker, Postgres and the Zoom
emulator (tests/worker's fixtures). The rule file is the chart's, rendered with short
windows, low thresholds and ``for: 0s`` so a one-minute story trips them. The story: a backlog
on a slow Zoom, a burst of 429s, a Zoom outage (the breaker opens, retries wait), recruiters
whose grants died at Zoom, one who disconnected, a malformed message, and at the end the
worker stopping.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import helm_python
import httpx
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.dashboards import panel_queries
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault

from tests.ops.prometheus import PrometheusServer
from tests.ops.tools import NAMESPACE, WORKER_JOB, dashboard, rule_groups, tool, write_rules
from tests.worker.conftest import CLIENT_ID, CLIENT_SECRET, Pipeline, make_pipeline
from tests.worker.conftest import zoom as zoom  # the emulator fixture, for this module too
from tests.worker.harness import event

pytestmark = pytest.mark.timeout(240)

CREATE = "POST /v2/users/{userId}/meetings"
LIST = "GET /v2/users/{userId}/meetings"
WORKER_ENV = {
    "MAX_IN_FLIGHT": "4",  # slow enough for a backlog to build on a 250 ms Zoom
    "RETRY_DELAYS_SECONDS": "1,2,4",
    "RETRY_POLL_SECONDS": "0.2",
    "BREAKER_PROBE_INTERVAL_SECONDS": "1",
    "BREAKER_MIN_CALLS": "5",
}
# The chart's alerts with thresholds a one-minute run can cross.
FAST: dict[str, dict[str, Any]] = {
    "ZoomWorkerLagGrowing": {"minMessages": 10, "window": "10s"},
    "ZoomWorkerOldestMessageTooOld": {"seconds": 1},
    "ZoomWorkerConsumerNotRunning": {"progressSeconds": 30},
    "ZoomWorkerFailureRatioHigh": {"ratio": 0.1, "minFailures": 2, "window": "20s"},
    "ZoomWorkerZoomRateLimited": {"ratio": 0.05, "window": "20s"},
    "ZoomWorkerTokenRefreshFailures": {"minFailures": 1, "window": "30s"},
    "ZoomWorkerDeadLetters": {"window": "30s"},
    "ZoomWorkerRetriesPendingTooLong": {"seconds": 3},
}
SHOULD_FIRE = {
    "ZoomWorkerLagGrowing",
    "ZoomWorkerOldestMessageTooOld",
    "ZoomWorkerFailureRatioHigh",
    "ZoomWorkerZoomUnavailable",
    "ZoomWorkerZoomRateLimited",
    "ZoomWorkerTokenRefreshFailures",
    "ZoomWorkerDeadLetters",
    "ZoomWorkerRetriesPendingTooLong",
}
# Not in this story: Postgres and the broker stay up, serve (revokes) does not run. Their
# conditions are covered by the promtool unit tests (tests/ops/alerts_test.yaml).
NOT_IN_THIS_STORY = {"ZoomWorkerDependencyDown", "ZoomWorkerRevokesPending", "ZoomWorkerRevokeLost"}


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"ops-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        yield p


@pytest.fixture
def worker_port() -> int:
    return free_port()


@pytest.fixture
def prometheus(
    chart: helm_python.Chart, tmp_path: Path, worker_port: int
) -> Iterator[PrometheusServer]:
    binary = tool("prometheus")
    alerts = {name: {"for": "0s", **settings} for name, settings in FAST.items()}
    for name in SHOULD_FIRE | NOT_IN_THIS_STORY | {"ZoomWorkerConsumerNotRunning"}:
        alerts.setdefault(name, {"for": "0s"})
    rules = write_rules(rule_groups(chart, {"prometheusRule": {"alerts": alerts}}), tmp_path)
    server = PrometheusServer(
        binary, tmp_path, WORKER_JOB, NAMESPACE, [f"127.0.0.1:{worker_port}"], rules
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _metric(port: int, name: str) -> str:
    return "\n".join(
        line
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text.splitlines()
        if line.startswith(name)
    )


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not in {timeout} s: {what}")


def _revoke_at_zoom(pipeline: Pipeline, access_token: str) -> None:
    revoked = httpx.post(
        f"{pipeline.zoom.oauth_base_url}/oauth/revoke",
        data={"token": access_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 200


def _new_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


async def test_every_panel_has_data_and_the_alerts_fire(
    pipeline: Pipeline, prometheus: PrometheusServer, worker_port: int
) -> None:
    started = time.time()
    calm, dead, gone = ["ana", "ben", "cy"], ["dora", "eli", "fay"], "gus"
    for user in [*calm, *dead, gone]:
        await pipeline.connect(user)
    worker = pipeline.worker(HTTP_PORT=str(worker_port), **WORKER_ENV)
    worker.start()
    try:
        first = _new_id()
        await pipeline.sender.send("created", event(first, 1, organizer="ana"))
        await pipeline.results.wait_for(first, 1, timeout=60)

        # Every partition has had a record, so the worker knows its high watermark and its
        # committed lag is a series before the backlog (else its first sample is the peak).
        warm = [_new_id() for _ in range(20)]
        await pipeline.sender.send_all(
            ("created", event(ev, 1, organizer=calm[i % 3])) for i, ev in enumerate(warm)
        )
        await pipeline.results.until(
            lambda: all(pipeline.results.for_event(ev) for ev in warm), timeout=40
        )
        await asyncio.sleep(3)  # scraped at their settled values

        # 1. A backlog growing on a slow Zoom: events come at ~30/s for 5 s, the worker
        # finishes ~16/s (4 in flight at 250 ms each).
        pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=250)]
        backlog = [_new_id() for _ in range(150)]
        for i, ev in enumerate(backlog):
            await pipeline.sender.send("created", event(ev, 1, organizer=calm[i % 3]))
            await asyncio.sleep(0.03)
        await pipeline.results.until(
            lambda: all(pipeline.results.for_event(ev) for ev in backlog), timeout=40
        )

        # 2. Zoom's rate limit: 429s, then answers.
        pipeline.zoom.faults = [
            Fault(kind="rate_limit", endpoint=CREATE, count=12, retry_after_seconds=0.3)
        ]
        limited = [_new_id() for _ in range(8)]
        for i, ev in enumerate(limited):
            await pipeline.sender.send("created", event(ev, 1, organizer=calm[i % 3]))
        await pipeline.results.until(
            lambda: all(pipeline.results.for_event(ev) for ev in limited), timeout=30
        )

        # 3. Zoom down: the breaker opens, events are told once and wait for their retry.
        pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=e) for e in (CREATE, LIST)]
        outage = [_new_id() for _ in range(12)]
        for i, ev in enumerate(outage):
            await pipeline.sender.send("created", event(ev, 1, organizer=calm[i % 3]))
            await asyncio.sleep(0.2)
        await pipeline.results.until(
            lambda: all(pipeline.results.for_event(ev) for ev in outage), timeout=30
        )
        await _until(
            lambda: 'scope="zoom_api"} 2.0' in _metric(worker_port, "zoom_worker_breaker_state"),
            10,
            "the breaker opens",
        )
        await asyncio.sleep(5)  # retries pending for a few seconds, scraped
        pipeline.zoom.faults = []
        await pipeline.results.until(
            lambda: all(
                any(r.get("action") == "created" for r in pipeline.results.for_event(ev))
                for ev in outage
            ),
            timeout=40,
        )

        # 4. Grants that died at Zoom (the app removed there), a refresh that works, a
        # recruiter who disconnected, and a message that is not an event.
        for user in dead:
            _revoke_at_zoom(pipeline, (await pipeline.store.get_access_token(user)).access_token)
        pipeline.zoom.expire_access_tokens(pipeline.zoom_users["ana"])
        assert await pipeline.store.disconnect(gone)
        people = [_new_id() for _ in [*dead, "ana", gone]]
        for ev, user in zip(people, [*dead, "ana", gone], strict=True):
            await pipeline.sender.send("created", event(ev, 1, organizer=user))
        await pipeline.sender.send("created", b"{not an event", key="junk")
        for ev in people:
            await pipeline.results.wait_for(ev, 1)
        failed = {pipeline.results.for_event(ev)[0].get("reason") for ev in people}
        assert failed >= {"zoom_authorization_expired", "zoom_not_connected"}
        await pipeline.results.until(lambda: bool(pipeline.results.dead_letters()), timeout=20)
        await asyncio.sleep(4)  # a few more scrapes and rule evaluations

        # Every panel of the dashboard, as Grafana would ask, over the run.
        variables = {"namespace": NAMESPACE, "job": WORKER_JOB, "__rate_interval": "10s"}
        now = time.time()
        empty = {
            f"{title}: {expr}"
            for title, exprs in panel_queries(dashboard(), variables).items()
            for expr in exprs
            if not prometheus.query_range(expr, started, now)
        }
        fired = prometheus.fired(started, now)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    # 5. The worker is gone: Prometheus sees its target down.
    await _until(
        lambda: "ZoomWorkerConsumerNotRunning" in prometheus.fired(started, time.time()),
        15,
        "ZoomWorkerConsumerNotRunning fires once the worker stopped",
    )
    assert empty == set(), "panels without data"
    missing = {name: prometheus.explain(name, started, now) for name in SHOULD_FIRE - fired}
    assert not missing, f"did not fire; what Prometheus saw: {json.dumps(missing)[:8000]}"
    assert fired & NOT_IN_THIS_STORY == set()
