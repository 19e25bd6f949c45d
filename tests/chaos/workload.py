"""Traffic for the chaos tests: a seeded calendar story, a feeder that sends it while faults
strike, a bulk loader for backlogs, and "settled": every must-answer source answered and the
worker's group caught up (committed offsets at the end of every event partition).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.chaos.invariants import Settled, all_answered
from tests.chaos.plan import Plan, Source
from tests.worker.harness import PARTITIONS, Results, Topics

BASE = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def event_body(
    event_id: str,
    revision: int,
    organizer: str,
    *,
    title: str,
    start: datetime,
    minutes: int = 30,
    video: str = "zoom",
    description: str | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema_version": 1,
        "message_id": str(uuid.uuid4()),
        "event_id": event_id,
        "revision": revision,
        "occurred_at": datetime.now(UTC).isoformat(),
        "organizer": {"user_id": organizer, "email": f"{organizer}@talivo.example"},
    }
    if deleted:
        return body
    return body | {
        "title": title,
        "description": description,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "timezone": "Europe/Madrid",
        "attendees": [{"email": "candidate@example.org", "name": "Candidate"}],
        "video_conference": video,
    }


def calendar_story(
    prefix: str, organizers: Sequence[str], events: int, seed: int, *, twins: bool = False
) -> Plan:
    """``events`` calendar events, each a short life (create, moves, a switch away from Zoom and
    back, a delete), interleaved across events in a seeded order; one organizer per event.

    With ``twins``, every second event is created with the same organizer, title and start as
    the one before it (two interviews booked alike), which Zoom cannot tell apart."""
    rng = random.Random(seed)
    lives: list[list[tuple[str, dict[str, Any]]]] = []
    for n in range(events):
        ev = f"{prefix}-ev{n:04d}"
        twin = twins and n % 2 == 1
        who = organizers[(n - 1 if twin else n) % len(organizers)]
        start = BASE + timedelta(minutes=30 * (n - 1 if twin else n))
        title = f"{prefix}-ev{n - 1:04d} interview" if twin else f"{ev} interview"
        life: list[tuple[str, dict[str, Any]]] = []

        def step(kind: str, revision: int, title: str, at: datetime, **more: Any) -> None:
            life.append((kind, event_body(ev, revision, who, title=title, start=at, **more)))  # noqa: B023

        step("created", 1, title, start)
        if rng.random() < 0.6:
            step("updated", 2, f"{ev} moved", start + timedelta(hours=1))
            ending = rng.random()
            if ending < 0.12:
                step("deleted", 3, "", start, deleted=True)
            elif ending < 0.24:
                step("updated", 3, f"{ev} moved", start, video="none")
                if rng.random() < 0.5:
                    step("updated", 4, f"{ev} back", start, description="back on Zoom")
            elif ending < 0.4:
                step("updated", 3, f"{ev} final", start, minutes=45, description="Bring a laptop.")
        lives.append(life)
    plan = Plan()
    pending = [list(life) for life in lives]
    while pending:
        life = rng.choice(pending)
        kind, body = life.pop(0)
        plan.add(kind, body)
        if not life:
            pending.remove(life)
    return plan


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=5,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=10_000,
    )


async def produce_all(bootstrap: str, topics: Topics, sources: Sequence[Source]) -> float:
    """Send ``sources`` in order as fast as the broker takes them; seconds it took."""
    started = time.monotonic()
    kafka = producer(bootstrap)
    await kafka.start()
    try:
        for i in range(0, len(sources), 500):
            batch = sources[i : i + 500]
            futures = [await kafka.send(getattr(topics, s.kind), s.value, key=s.key) for s in batch]
            await asyncio.gather(*futures)
    finally:
        await kafka.stop()
    return time.monotonic() - started


@dataclass
class Feeder:
    """Sends a plan's sources in order at ``rate`` per second, in the background. Clearing
    ``gate`` pauses it (while the test's own path to Kafka is down); a send that fails is
    tried again, so a source may land twice: an exact redelivery, which the worker must
    answer under the same result id."""

    bootstrap: str
    topics: Topics
    sources: Sequence[Source]
    rate: float
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> Feeder:
        self.gate.set()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def done(self, timeout: float = 120.0) -> None:
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def wait_sent(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"feeder sent {self.sent} of {count} in {timeout:.0f}s")
            await asyncio.sleep(0.05)

    async def _run(self) -> None:
        kafka = producer(self.bootstrap)
        await kafka.start()
        try:
            interval = 1.0 / self.rate
            next_at = time.monotonic()
            for source in self.sources:
                while True:
                    await self.gate.wait()
                    try:
                        await kafka.send_and_wait(
                            getattr(self.topics, source.kind), source.value, key=source.key
                        )
                        break
                    except KafkaError:
                        await asyncio.sleep(0.5)
                self.sent += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await kafka.stop()


async def group_lag(bootstrap: str, group: str, topics: Topics) -> int | None:
    """Records of the event topics the group has not committed past (None: cannot tell now)."""
    parts = [
        TopicPartition(t, p)
        for t in (topics.created, topics.updated, topics.deleted)
        for p in range(PARTITIONS)
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await consumer.start()
        ends = await consumer.end_offsets(parts)
        committed = await admin.list_consumer_group_offsets(group)
    except KafkaError:
        return None
    finally:
        await consumer.stop()
        await admin.close()
    lag = 0
    for tp in parts:
        done = committed.get(tp)
        position = done.offset if done is not None and done.offset >= 0 else 0
        lag += max(0, ends[tp] - position)
    return lag


async def settle(
    results: Results, plan: Plan, *, bootstrap: str, group: str, timeout: float
) -> Settled:
    """Wait until every must-answer source is answered and the group has committed every event
    record, then read results one more second. Not settled by ``timeout``: says what is
    missing (``check_invariants`` reports it with everything else)."""
    started = time.monotonic()
    must = plan.must_answer()
    deadline = started + timeout
    while True:
        await results.settle(0.3)
        if all_answered(plan, results, must):
            lag = await group_lag(bootstrap, group, results.topics)
            if lag == 0:
                await results.settle(1.0)
                return Settled(True, time.monotonic() - started)
        if time.monotonic() > deadline:
            answered = {v["correlation_id"] for _, v, _ in results.seen if v is not None}
            lag = await group_lag(bootstrap, group, results.topics)
            return Settled(
                False,
                time.monotonic() - started,
                f"not settled in {timeout:.0f}s: {len(must - answered)} must-answer sources "
                f"unanswered, {lag} event records not committed by the group",
            )


def replay_dead_letters(env: dict[str, str], *reasons: str) -> str:
    """``zoom-worker dlq replay`` as an operator runs it; its output."""
    args = [sys.executable, "-m", "worker", "dlq", "replay"]
    for reason in reasons:
        args += ["--reason", reason]
    done = subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"dlq replay failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout.strip()
