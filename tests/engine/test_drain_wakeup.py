"""A drain notices every record that finishes, however closely they follow one another.

Two records finishing a few loop steps apart once left a drain (a shutdown, a revoke) waiting
out its whole grace: the second finished before the drain had registered to hear of it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from worker.engine.lanes import LaneRunner
from worker.engine.records import ConsumedRecord


def _record(offset: int) -> ConsumedRecord:
    return ConsumedRecord("t", 0, offset, f"k{offset}".encode(), b"v", (), 0)


@pytest.mark.parametrize("steps_apart", range(6), ids=lambda n: f"{n}-steps-apart")
async def test_a_drain_ends_when_the_last_record_finishes(steps_apart: int) -> None:
    release, done = asyncio.Event(), []

    async def handler(record: ConsumedRecord) -> None:
        await release.wait()
        for _ in range(steps_apart * record.offset):
            await asyncio.sleep(0)

    runner = LaneRunner(handler, done.append)
    for offset in range(2):
        runner.submit(_record(offset))
    await asyncio.sleep(0.01)  # both running, waiting for the release
    started = time.monotonic()
    draining = asyncio.ensure_future(runner.drain(lambda _: True, grace_seconds=3.0))
    await asyncio.sleep(0)
    release.set()
    result = await draining
    assert time.monotonic() - started < 1.0, "the drain sat out its grace"
    assert (result.cancelled, result.dropped, len(done), runner.in_flight) == (0, 0, 2, 0)
