"""Publishing to Kafka: results and dead letters, acknowledged before ``publish`` returns."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from worker.pipeline.ports import Headers


class KafkaPublisher:
    """``publish`` blocks until the broker acknowledges (acks=all), so a result is durable
    before the source offset may be committed. Under broker backpressure it waits; it raises
    aiokafka's errors only after the producer's own retries (delivery timeout)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        await self._producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
