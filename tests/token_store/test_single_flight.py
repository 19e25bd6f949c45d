"""SingleFlight: one running call per key, shared result, cancellation of one waiter is local."""

from __future__ import annotations

import asyncio

import pytest

from token_store.single_flight import SingleFlight


async def test_concurrent_callers_share_one_call_and_its_result() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    waiters = [asyncio.ensure_future(flights.run("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [1] * 10
    assert await flights.run("k", work) == 2  # finished calls are not cached


async def test_an_exception_reaches_every_waiter() -> None:
    flights: SingleFlight[str, int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    results = await asyncio.gather(
        *(flights.run("k", fail) for _ in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [RuntimeError] * 3


async def test_a_cancelled_waiter_does_not_cancel_the_call_for_others() -> None:
    flights: SingleFlight[str, str] = SingleFlight()

    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.ensure_future(flights.run("k", slow))
    second = asyncio.ensure_future(flights.run("k", slow))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "done"
