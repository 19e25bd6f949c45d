"""Publishing to Kafka: results and dead letters, acknowledged before ``publish`` returns."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind, Tracer

from worker.pipeline.ports import Headers
from worker.runtime.tracing import (
    OFFSET,
    PARTITION,
    failed,
    send_attributes,
    with_trace_context,
)


class KafkaPublisher:
    """``publish`` blocks until the broker acknowledges (acks=all), so a result is durable
    before the source offset may be committed. Under broker backpressure it waits; it raises
    aiokafka's errors only after the producer's own retries (delivery timeout).

    With a ``tracer`` (tracing on: ``worker/runtime/tracing.py``) each record is sent inside a
    PRODUCER span (``<topic> send``, a child of the current span) and carries that span's
    trace context after its own headers, unless they hold a ``traceparent`` already (a dead
    letter keeps its source's). Without one, the headers go out exactly as given."""

    def __init__(self, producer: AIOKafkaProducer, *, tracer: Tracer | None = None) -> None:
        self._producer = producer
        self._tracer = tracer

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        if self._tracer is None:
            await self._producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
            return
        with self._tracer.start_as_current_span(
            f"{topic} send",
            kind=SpanKind.PRODUCER,
            attributes=send_attributes(topic, key, value),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                traced = list(with_trace_context(headers))
                sent = await self._producer.send_and_wait(
                    topic, value=value, key=key, headers=traced
                )
            except BaseException as error:
                failed(span, error)
                raise
            span.set_attribute(PARTITION, str(sent.partition))
            span.set_attribute(OFFSET, sent.offset)
