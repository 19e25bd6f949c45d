"""The dependency monitor in-process: probes that fail and recover as the test says.

What it does with a real Postgres and broker going away is in tests/worker/test_outages.py.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
)
from prometheus_client import REGISTRY
from psycopg_pool import PoolTimeout

from schemas import ContractError
from worker.runtime.dependencies import DependencyMonitor, is_dependency_error


class Flaky:
    """A probe that fails while ``down``; remembers whether each call was suspicious."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[bool] = []

    async def __call__(self, suspect: bool) -> None:
        self.calls.append(suspect)
        if self.down:
            raise ConnectionRefusedError("refused")


def value(name: str, dependency: str) -> float:
    return REGISTRY.get_sample_value(name, {"dependency": dependency}) or 0.0


def monitor(**probes: Flaky) -> DependencyMonitor:
    return DependencyMonitor(probes, timeout=0.5, interval=0.05, outage_interval=0.01)


async def test_an_outage_is_seen_counted_waited_out_and_ended() -> None:
    name = f"db-{uuid.uuid4().hex[:6]}"
    db, broker = Flaky(), Flaky()
    deps = monitor(**{name: db, "broker-" + name: broker})
    async with deps.running():
        assert value("zoom_worker_dependency_up", name) == 1
        assert await deps.check(name)
        assert await deps.settle() is False  # all answer: nothing to wait for
        await asyncio.wait_for(deps.ready(), 1)

        db.down = True
        waiting = asyncio.create_task(deps.settle())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        assert deps.down == [name] and not deps.is_up(name) and deps.is_up("broker-" + name)
        assert value("zoom_worker_dependency_up", name) == 0
        assert value("zoom_worker_dependency_outages_total", name) == 1
        assert not await deps.check(name)
        held = asyncio.create_task(deps.ready())
        await asyncio.sleep(0.05)
        assert not held.done()  # new work waits while a dependency is known down
        assert db.calls[-1] is True  # probes during an outage are suspicious ones

        db.down = False
        assert await asyncio.wait_for(waiting, 2) is True  # it waited an outage out
        await asyncio.wait_for(held, 1)
        assert value("zoom_worker_dependency_up", name) == 1
        assert value("zoom_worker_dependency_outages_total", name) == 1  # one outage, once


async def test_a_probe_that_hangs_counts_as_down() -> None:
    name = f"slow-{uuid.uuid4().hex[:6]}"

    async def hangs(_: bool) -> None:
        await asyncio.sleep(60)

    deps = DependencyMonitor({name: hangs}, timeout=0.05)
    assert await deps.probe() is False
    assert deps.down == [name]


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        PoolTimeout("couldn't get a connection after 30.00 sec"),
        ConnectionResetError(),
        KafkaTimeoutError(),
        KafkaConnectionError(),
        NotLeaderForPartitionError(),
    ],
    ids=type,
)
def test_dependency_errors(error: Exception) -> None:
    assert is_dependency_error(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("x"),
        psycopg.DataError("invalid byte sequence"),
        MessageSizeTooLargeError(),
        ContractError("title", "too long"),
    ],
    ids=type,
)
def test_errors_about_the_message(error: Exception) -> None:
    assert not is_dependency_error(error)


def test_an_error_raised_from_a_dependency_error_is_one() -> None:
    try:
        try:
            raise psycopg.OperationalError("gone")
        except psycopg.OperationalError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_dependency_error(wrapped)
    try:
        try:
            raise psycopg.OperationalError("gone")
        except psycopg.OperationalError:
            raise RuntimeError("unrelated") from None
    except RuntimeError as unrelated:
        assert not is_dependency_error(unrelated)
