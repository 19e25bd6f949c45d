"""Drive the worker as a separate process: publish calendar messages, collect its results."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from devservices._process import die_with_parent

PARTITIONS = 3


@dataclass
class Topics:
    prefix: str

    def __getattr__(self, name: str) -> str:
        names = {
            "created": "event.created",
            "updated": "event.updated",
            "deleted": "event.deleted",
            "linked": "meeting.linked",
            "failed": "meeting.failed",
            "dlq": "dlq",
        }
        if name not in names:
            raise AttributeError(name)
        return f"{self.prefix}.{names[name]}"

    def all(self) -> list[str]:
        return [self.created, self.updated, self.deleted, self.linked, self.failed, self.dlq]

    def env(self) -> dict[str, str]:
        return {
            "TOPIC_EVENT_CREATED": self.created,
            "TOPIC_EVENT_UPDATED": self.updated,
            "TOPIC_EVENT_DELETED": self.deleted,
            "TOPIC_MEETING_LINKED": self.linked,
            "TOPIC_MEETING_FAILED": self.failed,
            "TOPIC_DEAD_LETTER": self.dlq,
        }


def event(
    event_id: str,
    revision: int,
    organizer: str = "ana",
    *,
    deleted: bool = False,
    video: str = "zoom",
    title: str = "Interview",
    shift_minutes: int = 0,
    message_id: str | None = None,
) -> dict[str, Any]:
    start = datetime(2026, 12, 1, 15, 0, tzinfo=UTC) + timedelta(minutes=shift_minutes)
    body: dict[str, Any] = {
        "schema_version": 1,
        "message_id": message_id or str(uuid.uuid4()),
        "event_id": event_id,
        "revision": revision,
        "occurred_at": datetime.now(UTC).isoformat(),
        "organizer": {"user_id": organizer, "email": f"{organizer}@talivo.example"},
    }
    if deleted:
        return body
    return body | {
        "title": title,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "timezone": "Europe/Madrid",
        "attendees": [],
        "video_conference": video,
    }


@dataclass
class Results:
    """Everything published on the result and dead-letter topics, read without a group."""

    bootstrap: str
    topics: Topics
    seen: list[tuple[str, dict[str, Any] | None, dict[str, bytes]]] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        parts = [
            TopicPartition(t, p)
            for t in (self.topics.linked, self.topics.failed, self.topics.dlq)
            for p in range(PARTITIONS)
        ]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)

    async def stop(self) -> None:
        if self._consumer:
            await self._consumer.stop()

    async def _drain(self, timeout_ms: int = 100) -> None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for r in records:
                value = json.loads(r.value) if r.topic != self.topics.dlq else None
                headers = dict(r.headers or ())
                if r.topic == self.topics.dlq:
                    headers["__value__"] = r.value or b""
                self.seen.append((r.topic, value, headers))

    def for_event(self, event_id: str) -> list[dict[str, Any]]:
        return [v for t, v, _ in self.seen if v is not None and v.get("event_id") == event_id]

    def dead_letters(self) -> list[dict[str, bytes]]:
        return [h for t, _, h in self.seen if t == self.topics.dlq]

    async def wait_for(
        self, event_id: str, count: int, timeout: float = 30
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self._drain()
            found = self.for_event(event_id)
            if len(found) >= count:
                return found
        raise AssertionError(
            f"expected {count} results for {event_id}, got {self.for_event(event_id)}"
        )

    async def until(self, predicate: Any, timeout: float = 60) -> None:
        """Keep reading results until ``predicate()`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self._drain()
            if predicate():
                return
        raise AssertionError("condition on results not met in time")

    async def settle(self, seconds: float = 1.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._drain()


class Sender:
    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        self.topics = topics
        self.sent = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, kind: str, body: dict[str, Any] | bytes, key: str | None = None) -> None:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        k = key if key is not None else (body["event_id"] if isinstance(body, dict) else None)
        await self._producer.send_and_wait(
            getattr(self.topics, kind), value, key=k.encode() if k else None
        )
        self.sent += 1

    async def send_all(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for kind, body in items:
            await self.send(kind, body)


# The production command, and the dev tooling's worker that SIGKILLs itself at the step
# ZOOM_WORKER_CRASH_AT names (production cannot be made to crash on purpose).
RUN = ("-m", "worker", "run")
CRASHING_RUN = ("-m", "devservices.crashing_worker")


@dataclass
class WorkerProcess:
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    command: tuple[str, ...] = RUN

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        from tests.conftest import WORKER_LOGS

        self.log_path = f"/tmp/zoom-worker-test-{uuid.uuid4().hex[:8]}.log"
        WORKER_LOGS.append(self.log_path)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command],
                env={**os.environ, **self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # a killed test run leaves no worker behind
            )

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        # Until the worker has installed its handlers, SIGTERM ends it like any process.
        deadline = time.monotonic() + 30
        while "worker starting" not in self.log() and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def processed(metrics_url: str) -> int:
    """Source messages the worker has finished, from its own ``/metrics``."""
    import httpx

    text = httpx.get(metrics_url, timeout=2).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("zoom_worker_messages_total{")
        )
    )


async def until(predicate: Any, timeout: float = 30, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")
