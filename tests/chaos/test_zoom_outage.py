"""A two-minute Zoom outage in the middle of a backlog heals by itself (no operator).

While Zoom answers every call with 503, the worker tells each event's calendar once that it
will retry (``meeting.failed`` with ``next_attempt_at``), its circuit breaker stops calling
Zoom but for one probe every ``BREAKER_PROBE_INTERVAL_SECONDS`` (2 s here), and the retries
wait in the schedule. When Zoom is back a probe succeeds, the waiting retries are made due and
drained at the runner's pace; every event ends linked, nothing on the dead-letter topic, no
meeting twice (``check_invariants``).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from devservices.zoom_emulator.faults import Fault

from tests.chaos.conftest import ChaosWorld
from tests.chaos.test_faults import begin, finish

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

OUTAGE_SECONDS = 120.0
PROBE_SECONDS = 2.0  # BREAKER_PROBE_INTERVAL_SECONDS in tests/chaos/conftest.py
IN_FLIGHT = 32  # MAX_IN_FLIGHT there
ZOOM_API = (
    "POST /v2/users/{userId}/meetings",
    "GET /v2/users/{userId}/meetings",
    "GET /v2/meetings/{meetingId}",
    "PATCH /v2/meetings/{meetingId}",
    "DELETE /v2/meetings/{meetingId}",
)


def api_calls(world: ChaosWorld) -> int:
    return sum(world.zoom.calls(endpoint) for endpoint in ZOOM_API)


async def test_a_two_minute_zoom_outage_mid_backlog_heals_by_itself(world: ChaosWorld) -> None:
    run = await begin(world, seed=131)
    calm = [Fault(kind="latency", latency_ms=15, distribution="lognormal")]  # as ``begin`` set
    before = api_calls(world)
    started = time.monotonic()
    world.zoom.faults = [*calm, *(Fault(kind="error", status=503, endpoint=e) for e in ZOOM_API)]
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        world.zoom.faults = calm
    seconds = time.monotonic() - started
    calls = api_calls(world) - before
    # Those under way when Zoom went down (each may try again before the breaker opens),
    # those that opened it, then one probe per interval.
    bound = 2 * IN_FLIGHT + 10 + seconds / PROBE_SECONDS + 10
    print(f"{calls} calls to Zoom during a {seconds:.0f} s outage (bound {bound:.0f})")
    assert calls <= bound, f"{calls} calls to Zoom during a {seconds:.0f} s outage"
    summary = await finish(run, timeout=240)
    assert summary.dead_letters == 0
