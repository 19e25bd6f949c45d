"""SIGKILL the worker again and again while it drains a backlog; each time a new one takes over.

A backlog of ~1,300 messages (600 events, eight organizers, Zoom answering in ~25 ms) is loaded
first; one worker (MAX_IN_FLIGHT 64) starts on it and is SIGKILLed five times at seeded random
moments after it owns its partitions, a new worker starting at once after each kill. Whatever
step each kill interrupted (intent stored, Zoom called, link stored, result published, offset
not yet committed), the invariants must hold at the end: every must-answer message answered
under its one result id, no meeting made twice, Zoom equal to the calendar, nothing parked.

The ``twins`` run books every second event exactly like the one before it (same organizer,
title and start): a recovering create then sees two meetings that match its intent, and must
still adopt only its own.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from devservices.zoom_emulator.faults import Fault

from tests.chaos.conftest import ChaosWorld
from tests.chaos.invariants import check_invariants
from tests.chaos.workload import calendar_story, produce_all, settle

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

KILLS = 5


@pytest.mark.parametrize("twins", [False, True], ids=["distinct", "twins"])
async def test_sigkill_five_times_during_a_backlog(world: ChaosWorld, twins: bool) -> None:
    organizers = await world.organizers(8)
    plan = calendar_story(world.prefix, organizers, 600, seed=23, twins=twins)
    world.zoom.faults = [Fault(kind="latency", latency_ms=25, distribution="lognormal")]
    await produce_all(world.direct, world.topics, plan.sources)
    supervisor = world.supervisor(MAX_IN_FLIGHT="64")
    await supervisor.start()
    rng = random.Random(5)
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(0.3, 2.5))
        await supervisor.kill()
        await supervisor.wait_ready()
    settled = await settle(
        world.results, plan, bootstrap=world.direct, group=world.group, timeout=240
    )
    check_invariants(
        plan=plan,
        results=world.results,
        zoom=world.zoom,
        zoom_users=world.zoom_users,
        supervisors=[supervisor],
        settled=settled,
    )
    assert len([e for e in supervisor.exits if e.planned]) == KILLS
