"""Publishing from ``zoom-worker serve``: one Kafka producer, started beside the app.

- The producer is the worker's (``worker.runtime.kafka.producer``: ``acks=all``, idempotence
  as ``KAFKA_ENABLE_IDEMPOTENCE`` says, the same ``KAFKA_*`` security settings), passed in as a
  factory.
- ``serve`` does not wait for the broker: ``running`` starts the producer in the background,
  trying again every ``retry_seconds`` while the broker does not answer, so the connect pages
  and the other webhooks work through a broker outage. A publish before it has started raises
  ``PublishFailed``. ``zoom_meeting_changes_producer_up`` is 1 while the producer is started
  (0: Zoom's meeting webhooks are answered 503 and retried by Zoom; alert when it stays 0).
- ``publish`` waits for the broker's acknowledgement at most ``timeout_seconds`` (Zoom wants an
  answer within 3 s): ``PublishTimedOut`` then, carrying the send still under way, which the
  producer may yet deliver; ``PublishFailed`` when the broker refused it.

Errors::

    Exception
     └── PublishFailed          not started, or the broker refused the record
          └── PublishTimedOut   no acknowledgement in time; ``pending`` may still be delivered
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Gauge
from structlog.stdlib import get_logger

log = get_logger("connect.publisher")

PRODUCER_UP = Gauge(
    "zoom_meeting_changes_producer_up",
    "1 while serve's Kafka producer (meeting.changed) is started, 0 before or without one",
)


class PublishFailed(Exception):
    """Nothing was published (as far as anyone can tell yet)."""


class PublishTimedOut(PublishFailed):
    def __init__(self, pending: asyncio.Future[Any] | None) -> None:
        super().__init__("no acknowledgement from the broker in time")
        self.pending = pending  # the send under way, when the record reached the producer


class ChangePublisher:
    def __init__(
        self,
        factory: Callable[[], AIOKafkaProducer],
        *,
        timeout_seconds: float = 2.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._factory = factory
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ChangePublisher]:
        """Start the producer in the background; stop it (and the attempts) on leaving."""
        starting = asyncio.create_task(self._start(), name="meeting-changes-producer")
        try:
            yield self
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            producer, self._producer = self._producer, None
            if producer is not None:
                PRODUCER_UP.dec()
                await producer.stop()

    async def _start(self) -> None:
        attempts = 0
        while True:
            producer = self._factory()
            try:
                await producer.start()
            except Exception as exc:
                attempts += 1
                if attempts == 1 or attempts % 30 == 0:
                    log.warning("kafka_producer.start_failed", error=type(exc).__name__,
                                attempts=attempts)  # fmt: skip
                await producer.stop()
                await asyncio.sleep(self._retry)
                continue
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            PRODUCER_UP.inc()
            log.info("kafka_producer.started", attempts=attempts + 1)
            return

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        producer = self._producer
        if producer is None:
            raise PublishFailed("the producer has not started (no broker yet)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            # send() waits for the topic's metadata and room in the buffer; cancelled there, the
            # record never reached the producer.
            pending = await asyncio.wait_for(
                producer.send(topic, value=value, key=key, headers=list(headers)), self._timeout
            )
        except TimeoutError:
            raise PublishTimedOut(None) from None
        except Exception as exc:
            raise PublishFailed(type(exc).__name__) from exc
        try:
            await asyncio.wait_for(asyncio.shield(pending), max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise PublishTimedOut(pending) from None
        except Exception as exc:
            raise PublishFailed(type(exc).__name__) from exc
