"""Lanes: one record at a time per key, keys concurrently, failures and drains contained."""

from __future__ import annotations

import asyncio

import pytest

from worker.engine.lanes import LaneRunner
from worker.engine.records import ConsumedRecord


def _record(key: bytes | None, offset: int, topic: str = "t", partition: int = 0) -> ConsumedRecord:
    return ConsumedRecord(topic, partition, offset, key, b"v", (), 0)


class _Probe:
    """A processor that logs start/end per record and can hold records until released."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.running = 0
        self.peak = 0
        self.gates: dict[int, asyncio.Event] = {}
        self.fail: set[int] = set()

    async def __call__(self, record: ConsumedRecord) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.events.append(("start", record.offset))
        try:
            gate = self.gates.get(record.offset)
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(0.001)
            if record.offset in self.fail:
                raise RuntimeError("processor bug")
        finally:
            self.running -= 1
        self.events.append(("end", record.offset))


async def _settle(runner: LaneRunner) -> None:
    while runner.in_flight:
        await runner.changed()


async def test_same_key_runs_in_order_other_keys_overlap() -> None:
    probe, done = _Probe(), []
    runner = LaneRunner(probe, lambda r: done.append(r.offset))
    for offset in range(6):
        runner.submit(_record(b"a" if offset % 2 == 0 else b"b", offset))
    await _settle(runner)
    starts = [o for kind, o in probe.events if kind == "start"]
    assert [o for o in starts if o % 2 == 0] == [0, 2, 4]
    assert [o for o in starts if o % 2 == 1] == [1, 3, 5]
    assert probe.peak == 2
    assert sorted(done) == list(range(6))


async def test_records_without_key_are_serialised_per_partition() -> None:
    probe = _Probe()
    runner = LaneRunner(probe, lambda _: None)
    runner.submit(_record(None, 0, partition=0))
    runner.submit(_record(None, 1, partition=0))
    runner.submit(_record(None, 2, partition=1))
    await _settle(runner)
    assert probe.peak == 2
    assert probe.events.index(("end", 0)) < probe.events.index(("start", 1))


async def test_failure_stops_its_lane_only() -> None:
    probe, done = _Probe(), []
    probe.fail.add(0)
    runner = LaneRunner(probe, lambda r: done.append(r.offset))
    runner.submit(_record(b"a", 0))
    runner.submit(_record(b"a", 1))
    runner.submit(_record(b"b", 2))
    await runner.failed.wait()
    while 2 not in done:
        await runner.changed()
    assert runner.failure is not None and runner.failure.record.offset == 0
    assert ("start", 1) not in probe.events
    assert runner.in_flight == 2
    result = await runner.drain(lambda _: True, grace_seconds=1)
    assert (result.cancelled, result.dropped, runner.in_flight) == (0, 2, 0)
    assert done == [2]


@pytest.mark.parametrize("grace", [0.05, 5.0], ids=["grace-expires", "finishes-in-grace"])
async def test_drain_waits_then_cancels_only_what_belongs(grace: float) -> None:
    probe, done = _Probe(), []
    runner = LaneRunner(probe, lambda r: done.append(r.offset))
    held = probe.gates[0] = asyncio.Event()
    runner.submit(_record(b"a", 0, partition=0))
    runner.submit(_record(b"a", 1, partition=0))
    runner.submit(_record(b"b", 2, partition=1))
    if grace > 1:
        asyncio.get_running_loop().call_later(0.05, held.set)
    result = await runner.drain(lambda r: r.partition == 0, grace_seconds=grace)
    if grace > 1:
        assert (result.cancelled, result.dropped) == (0, 0)
        assert {0, 1} <= set(done)
    else:
        assert (result.cancelled, result.dropped) == (1, 1)
        assert 0 not in done and 1 not in done
        assert ("start", 1) not in probe.events
    await _settle(runner)
    assert 2 in done
