"""The floor for CPU per event: an aiokafka consume-and-produce loop that does no work.

``python -m bench.bare`` with the worker's environment: in the worker's group, read the three
event topics in batches, produce each value to the linked topic, commit per batch; one JSON
line per batch on stdout (``{"event": "batch", "count": n}``). SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.runtime.config import load_settings


async def main() -> None:
    settings = load_settings(os.environ)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    common = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    consumer = AIOKafkaConsumer(
        *settings.event_topics,
        **common,
        group_id=settings.kafka_group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(
        **common, acks="all", linger_ms=2, enable_idempotence=settings.kafka_enable_idempotence
    )
    await consumer.start()
    await producer.start()
    print("READY", flush=True)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            sent = [
                await producer.send(settings.topic_meeting_linked, msg.value, key=msg.key)
                for records in batch.values()
                for msg in records
            ]
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
                print(json.dumps({"event": "batch", "count": len(sent)}), flush=True)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
