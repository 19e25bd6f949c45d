"""Helpers for engine tests against the real broker: topics, producing, committed offsets.

Consumers get a 1 s session: Tansu completes a group join after about half the session timeout
(measured: 10 s session -> 5 s join, 1 s -> 1 s), and tests join often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from devservices import KafkaService
from devservices.kafka import create_topics

from worker.engine.records import ConsumedRecord

FAST_GROUP = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100}


async def event_topics(
    kafka: KafkaService, unique: str, count: int = 3, partitions: int = 3
) -> tuple[str, ...]:
    names = tuple(f"ev{i}-{unique}" for i in range(count))
    await create_topics(kafka.bootstrap_servers, list(names), partitions=partitions)
    return names


def consumer(kafka: KafkaService, group: str, **overrides: Any) -> AIOKafkaConsumer:
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "partition_assignment_strategy": (RangePartitionAssignor,),
        # A revoke waits for in-flight records: the broker must wait for it too.
        "rebalance_timeout_ms": 20000,
        **FAST_GROUP,
    }
    settings.update(overrides)
    return AIOKafkaConsumer(**settings)


async def produce(
    kafka: KafkaService, messages: Iterable[tuple[str, bytes | None, bytes, int | None]]
) -> None:
    """Send (topic, key, value, partition) in order; partition None lets the key decide."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_idempotence=kafka.supports_idempotence,
        linger_ms=5,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key, partition=partition)
            for topic, key, value, partition in messages
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


class CommittedReader:
    """Reads a group's committed offsets without joining it (manual assignment)."""

    def __init__(self, kafka: KafkaService, group: str, partitions: Iterable[TopicPartition]):
        self._partitions = list(partitions)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
        )

    async def __aenter__(self) -> CommittedReader:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def read(self) -> dict[TopicPartition, int | None]:
        return {tp: await self._consumer.committed(tp) for tp in self._partitions}


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``check`` (sync or async) until it returns truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


class Probe:
    """A processor that records what ran when, and flags one key running twice at once."""

    def __init__(self, sleep: Callable[[], float] = lambda: 0.0) -> None:
        self._sleep = sleep
        self._tick = 0
        self.spans: list[tuple[ConsumedRecord, int, int]] = []  # (record, start tick, end tick)
        self.active: set[bytes | None] = set()
        self.overlapping_keys: list[bytes | None] = []
        self.running = 0
        self.started = 0
        self.peak = 0

    def tick(self) -> int:
        self._tick += 1
        return self._tick

    async def __call__(self, record: ConsumedRecord) -> None:
        if record.key in self.active:
            self.overlapping_keys.append(record.key)
        self.active.add(record.key)
        self.running += 1
        self.started += 1
        self.peak = max(self.peak, self.running)
        start = self.tick()
        try:
            await asyncio.sleep(self._sleep())
        finally:
            self.running -= 1
            self.active.discard(record.key)
        self.spans.append((record, start, self.tick()))

    @property
    def done(self) -> list[ConsumedRecord]:
        return [record for record, _, _ in self.spans]
