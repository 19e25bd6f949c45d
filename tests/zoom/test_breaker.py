"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.zoom.breaker import BreakerConfig, BreakerState, CircuitBreaker
from worker.zoom.daily import DailyLimits
from worker.zoom.errors import ZoomCircuitOpen, ZoomDailyLimitReached


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **config: float) -> CircuitBreaker:
    settings = BreakerConfig(
        **{"min_calls": 4, "window_seconds": 10, "probe_interval_seconds": 5, **config}
    )  # type: ignore[arg-type]
    return CircuitBreaker("test", settings, monotonic=clock)


def test_it_opens_when_most_calls_fail_and_refuses_until_the_probe_is_due() -> None:
    clock = Clock()
    b = breaker(clock)
    for failed in (False, True, True):
        assert b.admit() is False
        b.record(False, failed)
    assert b.mode() == "closed", "too few calls to judge"
    b.admit()
    b.record(False, True)
    assert b.state is BreakerState.OPEN and b.mode() == "open"
    with pytest.raises(ZoomCircuitOpen) as refused:
        b.admit()
    assert refused.value.retry_after == pytest.approx(5) and refused.value.attempts == 0
    clock.now += 5
    assert b.mode() == "probe"
    assert b.admit() is True, "the probe"
    with pytest.raises(ZoomCircuitOpen):
        b.admit()  # one probe at a time
    b.record(True, True)
    assert b.mode() == "open", "a failed probe opens it again"
    clock.now += 5
    assert b.admit() is True
    b.record(True, False)
    assert b.mode() == "closed" and b.recoveries == 1


def test_answers_that_say_no_are_zoom_at_work_and_old_failures_age_out() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(10):
        b.admit()
        b.record(False, False)  # 4xx and 429 are answers
    for _ in range(3):
        b.admit()
        b.record(False, True)
    assert b.mode() == "closed"
    clock.now += 11  # the window has moved on: only new calls count
    for _ in range(4):
        b.admit()
        b.record(False, True)
    assert b.mode() == "open"


def test_a_probe_that_says_nothing_leaves_the_next_call_to_probe() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        b.admit()
        b.record(False, True)
    clock.now += 5
    assert b.admit() is True
    b.record(True, None)  # cancelled
    assert b.mode() == "probe"


def test_a_host_at_its_daily_limit_is_held_until_the_reset_and_others_are_not() -> None:
    limits = DailyLimits()
    now = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    reset = datetime(2026, 11, 29, tzinfo=UTC)
    limits.reached("ana", reset)
    with pytest.raises(ZoomDailyLimitReached) as held:
        limits.check("ana", now)
    assert held.value.resets_at == reset and held.value.attempts == 0
    limits.check("bea", now)
    limits.check("ana", reset + timedelta(seconds=1))  # the reset has passed
