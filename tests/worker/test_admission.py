"""Admission: a busy organizer waits on its own bound, never on everyone's."""

from __future__ import annotations

import asyncio

from worker.pipeline.admission import Admission
from worker.pipeline.metrics import ACTIVE


async def test_a_hot_organizer_cannot_take_every_slot() -> None:
    admission = Admission(active=4, per_organizer=2)
    release = asyncio.Event()
    running: dict[str, int] = {"hot": 0, "calm": 0}
    peak: dict[str, int] = {"hot": 0, "calm": 0}

    async def work(organizer: str, hold: bool) -> None:
        async with admission.slot(organizer):
            running[organizer] += 1
            peak[organizer] = max(peak[organizer], running[organizer])
            if hold:
                await release.wait()
            running[organizer] -= 1

    hot = [asyncio.create_task(work("hot", hold=True)) for _ in range(10)]
    await asyncio.sleep(0.01)
    # The hot organizer's backlog is stuck (waiting on Zoom), yet another organizer gets through.
    await asyncio.wait_for(asyncio.gather(*(work("calm", hold=False) for _ in range(5))), 1)
    assert peak == {"hot": 2, "calm": 1}
    release.set()
    await asyncio.gather(*hot)
    assert admission._organizers == {}  # idle organizers are forgotten


async def test_the_global_bound_holds_across_organizers() -> None:
    admission = Admission(active=3, per_organizer=3)
    now = peak = 0

    async def work(organizer: str) -> None:
        nonlocal now, peak
        async with admission.slot(organizer):
            now += 1
            peak = max(peak, now)
            await asyncio.sleep(0.005)
            now -= 1

    await asyncio.gather(*(work(f"o{i % 5}") for i in range(30)))
    assert peak == 3
    assert ACTIVE._value.get() == 0  # every admitted message was let go
