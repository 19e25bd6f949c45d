"""Each failure reason, end to end, and what happens to the source message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault

from tests.worker.conftest import CLIENT_ID, CLIENT_SECRET, Pipeline, make_pipeline
from tests.worker.harness import event

CREATE = "POST /v2/users/{userId}/meetings"
HORIZON = 6.0


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"f-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        p.port = free_port()
        # Retries by the worker itself, on a test's time scale: the horizon passes in seconds.
        worker = p.worker(
            HTTP_PORT=str(p.port),
            RETRY_DELAYS_SECONDS="0.5,1",
            RETRY_HORIZON_SECONDS=str(HORIZON),
            RETRY_POLL_SECONDS="0.2",
            BREAKER_PROBE_INTERVAL_SECONDS="1",
        )
        worker.start()
        try:
            yield p
        finally:
            assert worker.stop() == 0, worker.log()[-3000:]
            log = worker.log()
            leaked = [s for s in zoom.issued_secrets() if s in log]
            assert leaked == [], "a Zoom token or code reached the worker's log"


@pytest.fixture(autouse=True)
def no_faults(zoom: ZoomEmulator) -> None:
    zoom.faults = []


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


async def test_a_revoked_grant_fails_authorization_expired(pipeline: Pipeline) -> None:
    await pipeline.connect("dora")
    grant = await pipeline.store.get_access_token("dora")
    # Dora removes the app in Zoom: her grant dies there, unknown to us.
    revoked = httpx.post(
        f"{pipeline.zoom.oauth_base_url}/oauth/revoke",
        data={"token": grant.access_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 200
    ev = new_event_id()
    await pipeline.sender.send("created", event(ev, 1, organizer="dora"))
    (failed,) = await pipeline.results.wait_for(ev, 1)
    assert (failed["reason"], failed["retryable"]) == ("zoom_authorization_expired", False)
    # The dead tokens are gone: the next event says "not connected".
    await pipeline.sender.send("updated", event(ev, 2, organizer="dora"))
    _, after = await pipeline.results.wait_for(ev, 2)
    assert after["reason"] == "zoom_not_connected"


async def test_an_inactive_zoom_account_fails_account_inactive(pipeline: Pipeline) -> None:
    zoom_user = await pipeline.connect("eva")
    pipeline.zoom.set_user_status(zoom_user, "inactive")
    ev = new_event_id()
    await pipeline.sender.send("created", event(ev, 1, organizer="eva"))
    (failed,) = await pipeline.results.wait_for(ev, 1)
    assert (failed["reason"], failed["retryable"]) == ("zoom_account_inactive", False)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(kind="error", status=503, endpoint=CREATE, count=12), "zoom_unavailable"),
        (
            Fault(kind="rate_limit", endpoint=CREATE, retry_after_seconds=0.2, count=4),
            "zoom_rate_limited",
        ),
    ],
    ids=["zoom-down", "rate-limited"],
)
async def test_a_transient_failure_is_told_once_then_linked_by_itself(
    pipeline: Pipeline, fault: Fault, reason: str
) -> None:
    await pipeline.connect("hugo")
    pipeline.zoom.faults = [fault]
    ev = new_event_id()
    source = event(ev, 1, organizer="hugo")
    await pipeline.sender.send("created", source)
    notice, linked = await pipeline.results.wait_for(ev, 2)
    assert (notice["reason"], notice["retryable"]) == (reason, True)
    assert notice["attempts"] > 1 and "next_attempt_at" in notice
    assert linked["action"] == "created" and linked["correlation_id"] == source["message_id"]
    # Two ids: a consumer that drops repeated ids still gets the outcome.
    assert notice["message_id"] != linked["message_id"]
    await pipeline.results.settle(0.5)
    assert len(pipeline.results.for_event(ev)) == 2
    assert [h for h in pipeline.results.dead_letters() if ev.encode() in h["__value__"]] == []
    assert len(pipeline.zoom.meetings(pipeline.zoom_users["hugo"])) == 1


async def test_past_the_horizon_a_failure_is_final_parked_and_replayable(
    pipeline: Pipeline,
) -> None:
    await pipeline.connect("gael")
    reason = "zoom_unavailable"
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    ev = new_event_id()
    source = event(ev, 1, organizer="gael")
    await pipeline.sender.send("created", source)
    notice, final = await pipeline.results.wait_for(ev, 2, timeout=HORIZON + 30)
    assert "next_attempt_at" in notice and "next_attempt_at" not in final
    assert (final["reason"], final["retryable"]) == (reason, True)
    assert final["message_id"] != notice["message_id"]
    await pipeline.results.settle(0.5)
    parked = [h for h in pipeline.results.dead_letters()
              if h["__value__"] == json.dumps(source).encode()]  # fmt: skip
    assert len(parked) == 1 and parked[0]["x-dlq-reason"] == reason.encode()

    # Zoom is back: the operator re-drives the parked message.
    pipeline.zoom.faults = []
    replay = subprocess.run(
        [sys.executable, "-m", "worker", "dlq", "replay", "--reason", reason],
        env={**os.environ, **pipeline.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1 record(s)" in replay.stdout
    # (Should the breaker still be open from the outage, the replayed message waits for its
    # probe: its notice again, under the same id, then the outcome.)
    await pipeline.results.until(
        lambda: any(r.get("action") == "created" for r in pipeline.results.for_event(ev))
    )
    (linked,) = [r for r in pipeline.results.for_event(ev) if r.get("action") == "created"]
    assert linked["correlation_id"] == source["message_id"]
    assert len(pipeline.zoom.meetings(pipeline.zoom_users["gael"])) == 1


async def test_health_readiness_and_metrics_are_served(pipeline: Pipeline) -> None:
    base = f"http://127.0.0.1:{pipeline.port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "broker": True, "consumer": True}
    metrics = httpx.get(f"{base}/metrics").text
    for name in (
        "zoom_worker_messages_total",
        "zoom_worker_failures_total",
        "zoom_worker_zoom_requests_total",
        "zoom_worker_zoom_request_seconds",
        "zoom_worker_in_flight",
        "zoom_worker_active",
        "zoom_worker_partition_lag",
    ):
        assert name in metrics
