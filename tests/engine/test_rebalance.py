"""A second member joins mid-stream: no event runs twice at once, and none is lost."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from devservices import KafkaService

from tests.engine.kafka_support import Probe, consumer, event_topics, eventually, produce
from worker.engine.consumer import Engine, EngineSettings
from worker.engine.records import ConsumedRecord


class _Member:
    """One engine's view of a processor shared by both members."""

    def __init__(self, shared: Probe) -> None:
        self.shared = shared
        self.done: list[ConsumedRecord] = []

    async def __call__(self, record: ConsumedRecord) -> None:
        await self.shared(record)
        self.done.append(record)


async def test_second_member_joining_mid_stream(kafka: KafkaService, unique: str) -> None:
    topics = await event_topics(kafka, unique)
    keys = [f"event-{i}".encode() for i in range(60)]

    def wave(*rounds: int) -> list[tuple[str, bytes | None, bytes, int | None]]:
        return [(t, key, f"{n}".encode(), None) for n in rounds for t in topics for key in keys]

    await produce(kafka, wave(0, 1))
    total = 3 * len(topics) * len(keys)
    shared = Probe(sleep=lambda: random.uniform(0.005, 0.03))
    first, second = _Member(shared), _Member(shared)
    settings = EngineSettings(topics, max_buffered=6, commit_interval_seconds=0.1)
    group, stops = f"g-{unique}", (asyncio.Event(), asyncio.Event())
    first_consumer, second_consumer = consumer(kafka, group), consumer(kafka, group)
    tasks = [asyncio.create_task(Engine(first_consumer, first, settings).run(stops[0]))]
    await eventually(lambda: len(first.done) >= 20, what="the first member under way")

    joined_at = time.monotonic()
    tasks.append(asyncio.create_task(Engine(second_consumer, second, settings).run(stops[1])))
    await eventually(lambda: second_consumer.assignment(), what="the second member's share")
    join_seconds = time.monotonic() - joined_at
    assert len(first.done) < total * 2 / 3, "the first wave was over before the rebalance"
    await produce(kafka, wave(2))

    def processed() -> set[tuple[str, int, int]]:
        return {(r.topic, r.partition, r.offset) for r in first.done + second.done}

    await eventually(lambda: len(processed()) >= total or any(t.done() for t in tasks))
    for stop in stops:
        stop.set()
    await asyncio.gather(*tasks)

    assert shared.overlapping_keys == []
    assert len(processed()) == total  # every record at least once
    assert second.done and first.done
    # Each record is taken only by its partition's owner, the second member starting from
    # what the first committed when giving the partitions up.
    repeats = Counter((r.topic, r.partition, r.offset) for r in first.done + second.done)
    print(f"second member got its partitions after {join_seconds:.2f}s;"
          f" {sum(c - 1 for c in repeats.values())} records processed twice")  # fmt: skip


async def test_records_stuck_past_the_grace_period_move_to_the_new_owner(
    kafka: KafkaService, unique: str
) -> None:
    topics = await event_topics(kafka, unique, count=1)
    per_partition = 10
    await produce(
        kafka,
        [(topics[0], f"k{i}".encode(), b"v", i % 3) for i in range(3 * per_partition)],
    )
    stuck, healthy = Probe(sleep=lambda: 3600), Probe()
    healthy.active, healthy.overlapping_keys = stuck.active, stuck.overlapping_keys
    settings = EngineSettings(topics, max_buffered=30, shutdown_grace_seconds=0.3)
    group, stops = f"g-{unique}", (asyncio.Event(), asyncio.Event())
    second_consumer = consumer(kafka, group)
    tasks = [asyncio.create_task(Engine(consumer(kafka, group), stuck, settings).run(stops[0]))]
    await eventually(lambda: stuck.started == 30, what="the first member full of stuck records")
    tasks.append(asyncio.create_task(Engine(second_consumer, healthy, settings).run(stops[1])))
    await eventually(lambda: second_consumer.assignment(), what="the second member's share")
    owned = {tp.partition for tp in second_consumer.assignment()}
    await eventually(
        lambda: len(healthy.done) == per_partition * len(owned), what="the moved records done"
    )
    for stop in stops:
        stop.set()
    await asyncio.gather(*tasks)

    # Cancelled on revoke, not committed, so the new owner processed them; never both at once.
    assert {r.partition for r in healthy.done} == owned
    assert stuck.overlapping_keys == []
    assert not stuck.spans  # nothing the stuck member held ever counted as done
