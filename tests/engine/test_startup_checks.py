"""Before joining, the engine refuses a setup that could run one event's messages at once."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from devservices import KafkaService
from devservices.kafka import create_topics

from tests.engine.kafka_support import Probe, consumer, event_topics
from worker.engine.consumer import Engine, EngineSettings
from worker.engine.errors import TopicMissing, TopicsNotCoPartitioned, WrongAssignor


async def test_topics_with_different_partition_counts_are_refused(
    kafka: KafkaService, unique: str
) -> None:
    topics = await event_topics(kafka, unique, count=2, partitions=3)
    odd = f"odd-{unique}"
    await create_topics(kafka.bootstrap_servers, [odd], partitions=2)
    engine = Engine(consumer(kafka, f"g-{unique}"), Probe(), EngineSettings((*topics, odd)))
    with pytest.raises(TopicsNotCoPartitioned, match=f"{odd} has 2") as raised:
        await asyncio.wait_for(engine.run(asyncio.Event()), 10)
    assert raised.value.partitions == {topics[0]: 3, topics[1]: 3, odd: 2}
    assert not engine.running


@pytest.mark.parametrize(
    "strategy",
    [(RoundRobinPartitionAssignor,), (RangePartitionAssignor, RoundRobinPartitionAssignor)],
    ids=["round-robin", "range-or-round-robin"],
)
async def test_an_assignor_other_than_range_is_refused(
    kafka: KafkaService, unique: str, strategy: tuple[type, ...]
) -> None:
    topics = await event_topics(kafka, unique, count=1)
    kafka_consumer = consumer(kafka, f"g-{unique}", partition_assignment_strategy=strategy)
    engine = Engine(kafka_consumer, Probe(), EngineSettings(topics))
    with pytest.raises(WrongAssignor, match="range assignor"):
        await asyncio.wait_for(engine.run(asyncio.Event()), 10)


async def test_a_missing_topic_is_refused(kafka: KafkaService, unique: str) -> None:
    topics = await event_topics(kafka, unique, count=1)
    missing = f"missing-{unique}"
    engine = Engine(consumer(kafka, f"g-{unique}"), Probe(), EngineSettings((*topics, missing)))
    with pytest.raises(TopicMissing, match=missing):
        await asyncio.wait_for(engine.run(asyncio.Event()), 10)
