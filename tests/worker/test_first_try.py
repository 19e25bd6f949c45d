"""``after_first_try``: tenacity sees a first try made outside it as its own first attempt."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_fixed,
)

from worker.first_try import after_first_try


class Flaky:
    """Fails its first ``failures`` calls with ``ValueError(n)``, then answers ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(self.calls)
        return "ok"


def policy(attempts: int, log: list[tuple[int, str]], made: list[int]) -> AsyncRetrying:
    made.append(1)

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        log.append((state.attempt_number, str(state.outcome.exception())))

    async def no_sleep(_: float) -> None:
        return None

    return AsyncRetrying(
        retry=retry_if_exception_type(ValueError),
        stop=stop_after_attempt(attempts),
        wait=wait_fixed(0.5),
        before_sleep=before_sleep,
        reraise=True,
        sleep=no_sleep,
    )


async def test_a_first_success_makes_no_retrying() -> None:
    made: list[int] = []
    flaky = Flaky(0)
    assert await after_first_try(flaky, lambda: policy(3, [], made)) == "ok"
    assert (flaky.calls, made) == (1, [])


async def test_the_first_failure_is_the_retryings_first_attempt() -> None:
    log: list[tuple[int, str]] = []
    made: list[int] = []
    flaky = Flaky(2)
    assert await after_first_try(flaky, lambda: policy(3, log, made)) == "ok"
    # Three calls in all, each failure seen by the policy under its own attempt number.
    assert flaky.calls == 3
    assert log == [(1, "1"), (2, "2")]
    assert made == [1]


async def test_the_stop_counts_the_first_try() -> None:
    log: list[tuple[int, str]] = []
    flaky = Flaky(10)
    with pytest.raises(ValueError, match="3"):
        await after_first_try(flaky, lambda: policy(3, log, []))
    assert flaky.calls == 3  # not four: the bare try was the first of the three
    assert log == [(1, "1"), (2, "2")]


async def test_a_failure_the_policy_does_not_retry_is_raised_as_it_was() -> None:
    async def broken() -> str:
        raise KeyError("no")

    with pytest.raises(KeyError):
        await after_first_try(broken, lambda: policy(3, [], []))


async def test_cancellation_goes_through_without_a_retry() -> None:
    made: list[int] = []

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await after_first_try(cancelled, lambda: policy(3, [], made))
    assert made == []
