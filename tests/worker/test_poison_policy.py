"""The poison guard's policy, in-process: retried, parked, outages waited out, never a crash.

The processor here is a plain coroutine that fails the way a test says; the dependencies are a
switch the test flips. Everything the guard publishes is kept in a list. The same policy runs
against the real broker, Postgres and Zoom emulator in tests/worker/test_poison.py and
test_outages.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from schemas import parse_failed
from schemas.dead_letter import DLQ_EXCEPTION, DLQ_HEADERS
from tests.worker.harness import event
from worker.engine.records import ConsumedRecord
from worker.pipeline.poison import ParkingFailed, PoisonGuard, RetryPolicy
from worker.pipeline.ports import Headers
from worker.pipeline.processor import Topics
from worker.pipeline.results import parked_message_id

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TOPICS = Topics("event.created", "event.updated", "event.deleted", "linked", "failed", "dlq")
FAST = RetryPolicy(attempts=3, first_wait_seconds=0.001, max_wait_seconds=0.002, jitter_seconds=0)
SOURCE_HEADERS = (("traceparent", b"00-abc-def-01"),)


class Outage(Exception):
    """What a dependency's failure looks like to these fakes."""


class Switch:
    """Dependencies that are up or down as the test says."""

    def __init__(self) -> None:
        self._up = asyncio.Event()
        self._up.set()
        self.settled = 0

    def down(self) -> None:
        self._up.clear()

    def up(self) -> None:
        self._up.set()

    def caused(self, error: BaseException) -> bool:
        return isinstance(error, Outage)

    async def ready(self) -> None:
        await self._up.wait()

    async def settle(self) -> bool:
        self.settled += 1
        if self._up.is_set():
            return False
        await self._up.wait()
        return True


class Published:
    def __init__(self, fail_on: str | None = None, failures: int = 0) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, Headers]] = []
        self._fail_on, self._failures = fail_on, failures

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        if topic == self._fail_on and self._failures:
            self._failures -= 1
            raise RuntimeError("the topic does not take it")
        self.records.append((topic, key, value, headers))

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes | None, Headers]]:
        return [r for r in self.records if r[0] == topic]


class Processor:
    """Fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, record: ConsumedRecord) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def record(value: bytes | None = None, offset: int = 7) -> ConsumedRecord:
    body = value if value is not None else json.dumps(event("ev-1", 4, "ana")).encode()
    return ConsumedRecord("event.updated", 1, offset, b"ev-1", body, SOURCE_HEADERS, 0)


def guard(process: Processor, deps: Switch, published: Published) -> PoisonGuard:
    return PoisonGuard(
        process, topics=TOPICS, publisher=published, dependencies=deps, clock=lambda: NOW,
        policy=FAST,
    )  # fmt: skip


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def deps() -> Iterator[Switch]:
    yield Switch()


async def test_a_message_that_succeeds_is_not_touched(deps: Switch) -> None:
    process, published = Processor(), Published()
    await guard(process, deps, published)(record())
    assert (process.calls, published.records, deps.settled) == (1, [], 0)


async def test_a_message_that_fails_then_succeeds_is_retried_not_parked(deps: Switch) -> None:
    process, published = Processor(KeyError("x"), ValueError("y")), Published()
    await guard(process, deps, published)(record())
    assert process.calls == 3
    assert published.records == []


async def test_a_poison_message_is_parked_untouched_and_reported(deps: Switch) -> None:
    process = Processor(*(ValueError(f"bad {i}") for i in range(10)))
    published = Published()
    poison = sample("zoom_worker_poison_messages_total", topic="event.updated")
    parked = sample("zoom_worker_dead_lettered_total", reason="processing_error")
    source = record()

    await guard(process, deps, published)(source)  # returns: the engine commits past it

    assert process.calls == 3
    assert deps.settled == 1  # the dependencies were asked once, and answered
    ((_, key, value, headers),) = published.on("dlq")
    assert (key, value) == (source.key, source.value)
    assert headers[: len(SOURCE_HEADERS)] == SOURCE_HEADERS
    ours = dict(headers[len(SOURCE_HEADERS) :])
    assert [name for name, _ in headers[len(SOURCE_HEADERS) :]] == [*DLQ_HEADERS, DLQ_EXCEPTION]
    assert ours["x-dlq-reason"] == b"processing_error"
    assert ours[DLQ_EXCEPTION] == b"ValueError"
    assert ours["x-dlq-source-offset"] == b"7"
    assert b"bad" not in ours["x-dlq-error"]  # the exception's class and place, not its text
    assert ours["x-dlq-error"].startswith(b"ValueError at worker/test_poison_policy.py:")
    ((_, key, value, headers),) = published.on("failed")
    assert key == b"ev-1" and value is not None
    failed = parse_failed(value)
    body = json.loads(source.value or b"")
    assert failed.reason.value == "processing_error"
    assert (failed.event_id, failed.revision, failed.organizer_user_id) == ("ev-1", 4, "ana")
    assert failed.correlation_id == body["message_id"]
    assert failed.message_id == parked_message_id(body["message_id"])
    assert (failed.action, failed.retryable, failed.attempts) == ("update", True, 3)
    assert dict(headers)["message-type"] == b"meeting.failed"
    assert sample("zoom_worker_poison_messages_total", topic="event.updated") == poison + 1
    assert sample("zoom_worker_dead_lettered_total", reason="processing_error") == parked + 1


async def test_an_unreadable_poison_message_is_parked_without_a_result(deps: Switch) -> None:
    published = Published()
    await guard(Processor(*(TypeError() for _ in range(3))), deps, published)(record(b"\xff"))
    assert len(published.on("dlq")) == 1
    assert published.on("failed") == []


async def test_an_outage_is_waited_out_and_does_not_count_as_an_attempt(deps: Switch) -> None:
    process, published = Processor(), Published()
    deps.down()
    task = asyncio.create_task(guard(process, deps, published)(record()))
    await asyncio.sleep(0.05)
    assert not task.done()  # a known outage holds new work back before it starts
    assert process.calls == 0
    deps.up()
    await asyncio.wait_for(task, 5)
    assert process.calls == 1

    # Five failures in a row, each a dependency going down for a moment: more than the
    # attempts, and still no park.
    calls = 0

    async def meets_outages(record: ConsumedRecord) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            deps.down()
            asyncio.get_running_loop().call_later(0.01, deps.up)
            raise Outage()

    handler = PoisonGuard(
        meets_outages, topics=TOPICS, publisher=published, dependencies=deps,
        clock=lambda: NOW, policy=FAST,
    )  # fmt: skip
    await asyncio.wait_for(handler(record()), 5)
    assert calls == 6
    assert published.records == []


async def test_a_dependency_error_while_it_answers_counts_like_any_other(deps: Switch) -> None:
    # A blip the probe no longer sees: retried with backoff, and parked if it never passes.
    process, published = Processor(*(Outage() for _ in range(3))), Published()
    await guard(process, deps, published)(record())
    assert process.calls == 3
    assert len(published.on("dlq")) == 1
    assert published.on("dlq")[0][3][-1] == (DLQ_EXCEPTION, b"Outage")


async def test_failures_with_an_outage_behind_them_start_the_count_afresh(deps: Switch) -> None:
    # The message fails three times; by then a dependency is down: not the message's fault.
    process, published = Processor(*(RuntimeError() for _ in range(3))), Published()

    async def outage_on_last_attempt(record: ConsumedRecord) -> None:
        if process.calls == 2:
            deps.down()
            asyncio.get_running_loop().call_later(0.05, deps.up)
        await process(record)

    handler = PoisonGuard(
        outage_on_last_attempt, topics=TOPICS, publisher=published, dependencies=deps,
        clock=lambda: NOW, policy=FAST,
    )  # fmt: skip
    await asyncio.wait_for(handler(record()), 5)
    assert process.calls == 4  # three failures, an outage, then a fresh start that succeeds
    assert published.records == []


async def test_parking_retries_and_then_gives_up_loudly(deps: Switch) -> None:
    # The dead-letter topic refuses twice, then takes it: parked, one copy.
    published = Published(fail_on="dlq", failures=2)
    await guard(Processor(*(ValueError() for _ in range(3))), deps, published)(record())
    assert len(published.on("dlq")) == 1 and len(published.on("failed")) == 1
    # It always refuses while everything answers: the one case the guard raises (exit, restart).
    published = Published(fail_on="dlq", failures=100)
    with pytest.raises(ParkingFailed, match=r"event.updated\[1\]@7 failed with ValueError"):
        await guard(Processor(*(ValueError() for _ in range(3))), deps, published)(record())
    assert published.records == []


async def test_cancellation_goes_through_while_waiting_for_a_dependency(deps: Switch) -> None:
    deps.down()
    task = asyncio.create_task(guard(Processor(), deps, Published())(record()))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
