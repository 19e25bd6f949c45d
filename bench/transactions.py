"""``python -m bench.transactions``: what Kafka transactions would cost the worker's publish path.

The worker publishes each result with an acknowledged, idempotent produce and commits source
offsets separately (once a second, only below unfinished records). The alternative measured
here is the exactly-once pattern: per result, a transaction holding the produce and
``send_offsets_to_transaction`` for the source offset, then commit. Records finish out of
order across events, so a transaction cannot span many of them without holding back the fast
ones; the batched variant (N results and their offsets per transaction) shows the best case.
Runs on the broker ``devservices.kafka_service`` picks (Apache Kafka with a JDK); prints
results/s for each mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaProducer, TopicPartition
from devservices import kafka_service
from devservices.kafka import create_topics

VALUE = json.dumps({"type": "meeting.linked", "pad": "x" * 600}).encode()


async def acked(bootstrap: str, topic: str, count: int, concurrency: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with semaphore:
                await producer.send_and_wait(topic, VALUE, key=str(i % 500).encode())

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def transactional(bootstrap: str, topic: str, count: int, batch: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"bench-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    source = TopicPartition(topic, 0)
    try:
        started = time.perf_counter()
        for first in range(0, count, batch):
            async with producer.transaction():
                for i in range(first, min(count, first + batch)):
                    await producer.send(topic, VALUE, key=str(i % 500).encode())
                await producer.send_offsets_to_transaction({source: first + batch}, "bench-group")
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def main(count: int) -> None:
    with kafka_service() as kafka:
        topic = f"bench-txn-{uuid.uuid4().hex[:8]}"
        await create_topics(kafka.bootstrap_servers, [topic], partitions=12)
        print(f"broker: {kafka.source}; {count} results of {len(VALUE)} bytes each")
        for concurrency in (1, 128):
            rate = await acked(kafka.bootstrap_servers, topic, count, concurrency)
            print(f"acknowledged idempotent produce, {concurrency:>3} concurrent: {rate:8.0f}/s")
        for batch in (1, 10, 100):
            rate = await transactional(kafka.bootstrap_servers, topic, count, batch)
            print(f"transaction per {batch:>3} result(s) + offsets:          {rate:8.0f}/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.transactions", description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    asyncio.run(main(parser.parse_args().count))
