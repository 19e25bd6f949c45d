"""Against the broker: one event's records run one at a time in order; events run side by side."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict

from devservices import KafkaService
from prometheus_client import REGISTRY

from tests.engine.kafka_support import Probe, consumer, event_topics, eventually, produce
from worker.engine.consumer import Engine, EngineSettings
from worker.engine.records import ConsumedRecord

KEYS = [f"event-{i}".encode() for i in range(40)]


async def test_same_key_in_order_different_keys_concurrently(
    kafka: KafkaService, unique: str
) -> None:
    topics = await event_topics(kafka, unique)
    rounds = 2
    await produce(
        kafka,
        [(t, key, str(n).encode(), None) for n in range(rounds) for t in topics for key in KEYS],
    )
    total = rounds * len(topics) * len(KEYS)
    probe = Probe(sleep=lambda: random.uniform(0, 0.004))
    stop = asyncio.Event()
    engine = Engine(
        consumer(kafka, f"g-{unique}"),
        probe,
        EngineSettings(topics, max_buffered=16, commit_interval_seconds=0.2),
    )
    task = asyncio.create_task(engine.run(stop))
    await eventually(lambda: len(probe.spans) >= total or task.done(), what="all records")
    stop.set()
    await task

    done = probe.done
    assert len(done) == total
    assert len({(r.topic, r.partition, r.offset) for r in done}) == total
    assert probe.overlapping_keys == []
    spans_by_key: dict[bytes | None, list[tuple[int, int]]] = defaultdict(list)
    order: dict[tuple[bytes | None, str], list[bytes | None]] = defaultdict(list)
    for record, start, end in probe.spans:
        spans_by_key[record.key].append((start, end))
        order[(record.key, record.topic)].append(record.value)
    for spans in spans_by_key.values():
        spans.sort()
        assert all(prev_end < start for (_, prev_end), (start, _) in itertools.pairwise(spans))
    assert all(values == [b"0", b"1"] for values in order.values())
    assert probe.peak > 1, "different keys never overlapped"


class _Gauged(Probe):
    """Also samples the in-flight gauge and whether fetching is paused while full."""

    def __init__(self, limit: int) -> None:
        super().__init__(sleep=lambda: 0.01)
        self.limit = limit
        self.gauge_peak = 0.0
        self.saw_paused = False
        self.consumer: object = None
        self.topic = ""
        self.lag_peak = 0.0

    async def __call__(self, record: ConsumedRecord) -> None:
        gauge = REGISTRY.get_sample_value("zoom_worker_in_flight") or 0.0
        self.gauge_peak = max(self.gauge_peak, gauge)
        self.lag_peak = max(self.lag_peak, _lag(self.topic))
        await super().__call__(record)
        consumer_ = self.consumer
        assignment = consumer_.assignment()  # type: ignore[attr-defined]
        if assignment and consumer_.paused() == assignment:  # type: ignore[attr-defined]
            self.saw_paused = True


def _lag(topic: str) -> float:
    labels = ({"topic": topic, "partition": str(p)} for p in range(3))
    return sum(REGISTRY.get_sample_value("zoom_worker_partition_lag", x) or 0.0 for x in labels)


async def test_backlog_never_exceeds_max_buffered(kafka: KafkaService, unique: str) -> None:
    topics = await event_topics(kafka, unique, count=1)
    total = 120
    await produce(kafka, [(topics[0], f"k{i}".encode(), b"v", None) for i in range(total)])
    limit = 4
    probe = _Gauged(limit)
    stop = asyncio.Event()
    kafka_consumer = consumer(kafka, f"g-{unique}")
    probe.consumer, probe.topic = kafka_consumer, topics[0]
    engine = Engine(
        kafka_consumer,
        probe,
        EngineSettings(topics, max_buffered=limit, commit_interval_seconds=0.05),
    )
    task = asyncio.create_task(engine.run(stop))
    await eventually(lambda: len(probe.spans) >= total or task.done(), what="all records")
    await eventually(lambda: _lag(topics[0]) == 0, what="lag back to zero")
    stop.set()
    await task

    assert len(probe.spans) == total
    assert probe.peak == limit  # the limit is reached, and never passed
    assert probe.gauge_peak <= limit
    assert probe.saw_paused
    assert probe.lag_peak > 0  # the backlog showed as lag while it was worked off
