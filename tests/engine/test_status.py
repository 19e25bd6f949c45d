"""Against the broker: the engine's status (and its /metrics series) tells the truth.

Committed lag counts taken-but-unfinished records (the fetch lag does not), the oldest
unfinished record's age grows while it is stuck, a paused partition's lag follows records
produced meanwhile, idle is progress, and a revoked partition keeps no series.
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from devservices import KafkaService
from prometheus_client import REGISTRY, generate_latest

from tests.engine.kafka_support import (
    CommittedReader,
    Probe,
    consumer,
    event_topics,
    eventually,
    produce,
)
from worker.engine.consumer import Engine, EngineSettings
from worker.engine.records import ConsumedRecord
from worker.engine.status import PartitionStatus


class _Hold(Probe):
    """Holds the chosen offsets (all of them with ``hold=None``) until released."""

    def __init__(self, hold: set[int] | None) -> None:
        super().__init__()
        self.hold = hold
        self.release = asyncio.Event()
        self.held: list[int] = []

    async def __call__(self, record: ConsumedRecord) -> None:
        if self.hold is None or record.offset in self.hold:
            self.held.append(record.offset)
            await self.release.wait()
        await super().__call__(record)


def _sample(name: str, group: str, topic: str, partition: int = 0) -> float | None:
    labels = {"consumergroup": group, "topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value(name, labels)


def _partition(engine: Engine, topic: str, partition: int = 0) -> PartitionStatus | None:
    found = [p for p in engine.status().partitions if (p.topic, p.partition) == (topic, partition)]
    return found[0] if found else None


async def test_a_stuck_record_shows_in_committed_lag_and_age_but_not_in_fetch_lag(
    kafka: KafkaService, unique: str
) -> None:
    (topic,) = await event_topics(kafka, unique, count=1, partitions=1)
    await produce(kafka, [(topic, f"k{i}".encode(), b"v", 0) for i in range(10)])
    tp, group = TopicPartition(topic, 0), f"g-{unique}"
    hold, stop = _Hold({3}), asyncio.Event()
    engine = Engine(
        consumer(kafka, group), hold, EngineSettings((topic,), commit_interval_seconds=0.05)
    )
    task = asyncio.create_task(engine.run(stop))
    try:
        async with CommittedReader(kafka, group, [tp]) as committed:
            await eventually(lambda: len(hold.spans) == 9, what="the nine records not held")
            await eventually(
                lambda: _sample("zoom_worker_consumergroup_lag", group, topic) == 7,
                what="committed lag 10 - 3",
            )
            assert (await committed.read())[tp] == 3, "the broker's committed offset agrees"
            fetch_lag = {"topic": topic, "partition": "0"}
            assert REGISTRY.get_sample_value("zoom_worker_partition_lag", fetch_lag) == 0

            first = _sample("zoom_worker_oldest_unfinished_age_seconds", group, topic)
            await asyncio.sleep(0.3)
            second = _sample("zoom_worker_oldest_unfinished_age_seconds", group, topic)
            assert first is not None and second is not None
            assert second >= first + 0.25, "the stuck record's age grows"
            status = engine.status()
            assert status.in_flight == 1 and status.has_work
            assert status.progress_age_seconds >= 0.25, "polls with a record in flight are not"

            hold.release.set()
            await eventually(
                lambda: _sample("zoom_worker_consumergroup_lag", group, topic) == 0,
                what="lag 0 once committed past the released record",
            )
        assert _sample("zoom_worker_oldest_unfinished_age_seconds", group, topic) == 0
        assert not engine.status().has_work
    finally:
        stop.set()
        await task
    assert _sample("zoom_worker_consumergroup_lag", group, topic) is None, "a stopped engine"


async def test_an_idle_engine_keeps_making_progress(kafka: KafkaService, unique: str) -> None:
    topics = await event_topics(kafka, unique, count=1, partitions=2)
    group, stop = f"g-{unique}", asyncio.Event()
    engine = Engine(consumer(kafka, group), Probe(), EngineSettings(topics))
    task = asyncio.create_task(engine.run(stop))
    try:
        await eventually(lambda: len(engine.status().partitions) == 2, what="the assignment")
        await produce(kafka, [(topics[0], b"k", b"v", 1)])
        await eventually(
            lambda: (
                _sample("zoom_worker_consumergroup_lag", group, topics[0], 1) == 0
                and _sample("zoom_worker_consumergroup_lag", group, topics[0], 0) == 0
            ),
            what="both partitions' lag known and 0",
        )
        await asyncio.sleep(1.2)
        status = engine.status()
        assert status.progress_age_seconds < 0.8, "empty polls with nothing in flight count"
        assert not status.has_work
        progress = REGISTRY.get_sample_value(
            "zoom_worker_consumer_progress_age_seconds", {"consumergroup": group}
        )
        assert progress is not None and progress < 0.8
    finally:
        stop.set()
        await task


async def test_a_paused_partitions_lag_follows_records_produced_meanwhile(
    kafka: KafkaService, unique: str
) -> None:
    (topic,) = await event_topics(kafka, unique, count=1, partitions=1)
    await produce(kafka, [(topic, f"k{i}".encode(), b"v", 0) for i in range(5)])
    group, hold, stop = f"g-{unique}", _Hold(None), asyncio.Event()
    settings = EngineSettings(
        (topic,), max_buffered=2, commit_interval_seconds=0.05, end_offsets_interval_seconds=0.1
    )
    kafka_consumer = consumer(kafka, group)
    engine = Engine(kafka_consumer, hold, settings)
    task = asyncio.create_task(engine.run(stop))
    try:
        await eventually(lambda: len(hold.held) == 2, what="the buffer full")
        await eventually(lambda: kafka_consumer.paused(), what="fetching paused")
        await eventually(lambda: (_partition(engine, topic) or _none).committed_lag == 5)
        await produce(kafka, [(topic, f"m{i}".encode(), b"v", 0) for i in range(20)])
        await eventually(
            lambda: (_partition(engine, topic) or _none).committed_lag == 25,
            timeout=10,
            what="the end offset asked for while paused",
        )
        assert kafka_consumer.paused(), "still paused: the fetcher did not see them"
        assert kafka_consumer.highwater(TopicPartition(topic, 0)) == 5
    finally:
        hold.release.set()
        stop.set()
        await task


_none = PartitionStatus("", 0, None, 0.0)


async def test_revoked_partitions_leave_no_series(kafka: KafkaService, unique: str) -> None:
    (topic,) = await event_topics(kafka, unique, count=1, partitions=3)
    await produce(kafka, [(topic, b"k", b"v", p) for p in range(3)])
    group = f"g-{unique}"
    settings = EngineSettings((topic,), commit_interval_seconds=0.05)
    first_consumer = consumer(kafka, group)
    first = Engine(first_consumer, Probe(), settings)
    second = Engine(consumer(kafka, group), Probe(), settings)
    stops = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(first.run(stops[0]))]
    try:
        await eventually(lambda: _held(first) == {0, 1, 2}, what="the first member's three")
        await eventually(lambda: _series(group) == {0, 1, 2}, what="three series")

        tasks.append(asyncio.create_task(second.run(stops[1])))
        await eventually(
            lambda: _held(second) and _held(first) | _held(second) == {0, 1, 2},
            what="the partitions shared out",
        )
        assert _held(first).isdisjoint(_held(second)), "the first still reports revoked ones"
        assert _held(first) == {tp.partition for tp in first_consumer.assignment()}
        await eventually(lambda: _series(group) == {0, 1, 2}, what="each series back once")

        stops[1].set()
        await tasks.pop()
        await eventually(lambda: _held(first) == {0, 1, 2}, what="the first has all again")
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
    assert _series(group) == set(), "no series left once the group's members stopped"


def _held(engine: Engine) -> set[int]:
    return {p.partition for p in engine.status().partitions}


def _series(group: str) -> set[int]:
    """Partitions with a committed-lag series for ``group`` in the /metrics text."""
    found = set()
    for line in generate_latest().decode().splitlines():
        if line.startswith("zoom_worker_consumergroup_lag{") and f'consumergroup="{group}"' in line:
            found.add(int(line.split('partition="', 1)[1].split('"', 1)[0]))
    return found
