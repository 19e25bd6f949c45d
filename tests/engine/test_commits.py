"""Against the broker: offsets are committed only past finished records, also when stopping."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from devservices import KafkaService

from tests.engine.kafka_support import (
    CommittedReader,
    Probe,
    consumer,
    event_topics,
    eventually,
    produce,
)
from worker.engine.consumer import Engine, EngineSettings
from worker.engine.errors import HandlerFailed
from worker.engine.records import ConsumedRecord


class _Gate(Probe):
    """Holds chosen offsets until released; raises on others; notes cancellations."""

    def __init__(self, hold: set[int] = frozenset(), fail: set[int] = frozenset()) -> None:
        super().__init__()
        self.hold, self.fail = hold, fail
        self.release = asyncio.Event()
        self.held: list[int] = []
        self.cancelled: list[int] = []

    async def __call__(self, record: ConsumedRecord) -> None:
        if record.offset in self.fail:
            raise RuntimeError("processor bug")
        if record.offset in self.hold:
            self.held.append(record.offset)
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(record.offset)
                raise
        await super().__call__(record)


async def _one_partition(kafka: KafkaService, unique: str, count: int) -> tuple[str, ...]:
    topics = await event_topics(kafka, unique, count=1, partitions=1)
    await produce(kafka, [(topics[0], f"k{i}".encode(), b"v", 0) for i in range(count)])
    return topics


def _settings(topics: tuple[str, ...], grace: float = 5.0) -> EngineSettings:
    return EngineSettings(topics, max_buffered=8, shutdown_grace_seconds=grace,
                          commit_interval_seconds=0.05)  # fmt: skip


async def test_commit_stays_below_an_unfinished_record_until_it_finishes(
    kafka: KafkaService, unique: str
) -> None:
    topics = await _one_partition(kafka, unique, 10)
    tp = TopicPartition(topics[0], 0)
    gate, stop = _Gate(hold={3}), asyncio.Event()
    group = f"g-{unique}"
    task = asyncio.create_task(Engine(consumer(kafka, group), gate, _settings(topics)).run(stop))
    async with CommittedReader(kafka, group, [tp]) as committed:
        await eventually(lambda: len(gate.spans) == 9, what="the other nine records")
        await eventually(lambda: _equals(committed, tp, 3), what="commit up to the held record")
        await asyncio.sleep(0.3)  # several commit intervals
        assert (await committed.read())[tp] == 3
        gate.release.set()
        await eventually(lambda: _equals(committed, tp, 10), what="commit past the released")
    stop.set()
    await task


async def _equals(reader: CommittedReader, tp: TopicPartition, offset: int) -> bool:
    return (await reader.read())[tp] == offset


async def test_failing_processor_stops_the_engine_without_committing_its_record(
    kafka: KafkaService, unique: str
) -> None:
    topics = await _one_partition(kafka, unique, 6)
    tp = TopicPartition(topics[0], 0)
    gate, group = _Gate(fail={2}), f"g-{unique}"
    engine = Engine(consumer(kafka, group), gate, _settings(topics))
    with pytest.raises(HandlerFailed, match=r"@2") as raised:
        await asyncio.wait_for(engine.run(asyncio.Event()), 20)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert not engine.running
    async with CommittedReader(kafka, group, [tp]) as committed:
        assert (await committed.read())[tp] == 2


async def test_stop_finishes_in_flight_and_the_next_member_resumes_after_it(
    kafka: KafkaService, unique: str
) -> None:
    topics = await event_topics(kafka, unique, count=1)
    total = 60
    await produce(
        kafka, [(topics[0], f"k{i}".encode(), str(i).encode(), None) for i in range(total)]
    )
    group = f"g-{unique}"
    first, stop = Probe(sleep=lambda: 0.02), asyncio.Event()
    task = asyncio.create_task(Engine(consumer(kafka, group), first, _settings(topics)).run(stop))
    await eventually(lambda: len(first.spans) >= 10, what="some records done")
    stop.set()
    await task
    assert first.started == len(first.spans)  # in-flight records finished, none cancelled
    assert len(first.spans) < total

    second, stop = Probe(), asyncio.Event()
    task = asyncio.create_task(Engine(consumer(kafka, group), second, _settings(topics)).run(stop))
    await eventually(lambda: len(first.spans) + len(second.spans) >= total, what="the rest")
    stop.set()
    await task
    seen = [r.value for r in first.done + second.done]
    assert sorted(seen) == sorted(str(i).encode() for i in range(total))  # none lost, none twice


async def test_grace_expiry_cancels_and_leaves_the_record_uncommitted(
    kafka: KafkaService, unique: str
) -> None:
    topics = await _one_partition(kafka, unique, 5)
    tp = TopicPartition(topics[0], 0)
    gate, stop, group = _Gate(hold={1}), asyncio.Event(), f"g-{unique}"
    engine = Engine(consumer(kafka, group), gate, _settings(topics, grace=0.2))
    task = asyncio.create_task(engine.run(stop))
    await eventually(lambda: len(gate.spans) == 4, what="the records not held")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert gate.cancelled == [1]
    async with CommittedReader(kafka, group, [tp]) as committed:
        assert (await committed.read())[tp] == 1
