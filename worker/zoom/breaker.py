"""A circuit breaker on Zoom: when most calls fail, stop calling and probe at a low rate.

The states are resilience4j's:

- **closed**: calls go; their outcomes land in a sliding window of ``window_seconds``. Once at
  least ``min_calls`` ended there and ``failure_ratio`` of them failed, the breaker opens.
- **open**: no call goes (``ZoomCircuitOpen``, saying how long until the next probe) for
  ``probe_interval_seconds``.
- **half-open**: one call goes, the probe; others are refused as while open. Its success closes
  the breaker (the window starts empty, ``recoveries`` counts one more), its failure opens it
  again for another interval.

A failure is Zoom not answering usefully: no connection, no answer in time, a 5xx. Every other
answer (2xx, any 4xx, 429) is Zoom at work even when it says no, so trouble confined to one
account (its rate or daily limit, its token) never opens the breaker for the others.

Not thread-safe; used from one event loop. One breaker per process: replicas do not share
one, so with N replicas an outage sees at most N probes per interval.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from structlog.stdlib import get_logger

from worker.zoom.errors import ZoomCircuitOpen
from worker.zoom.metrics import BREAKER_PROBES, BREAKER_REFUSED, BREAKER_STATE, BREAKER_TRANSITIONS

log = get_logger(__name__)


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class BreakerConfig:
    failure_ratio: float = 0.5
    min_calls: int = 10
    window_seconds: float = 10.0
    probe_interval_seconds: float = 5.0


class CircuitBreaker:
    """See the module docstring. ``admit`` before a call, ``record`` after it, always."""

    def __init__(
        self,
        scope: str,
        config: BreakerConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scope = scope
        self._config = config or BreakerConfig()
        self._monotonic = monotonic
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, failed)
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probing = False
        self.recoveries = 0  # times it closed again after opening
        BREAKER_STATE.labels(scope).set(0)

    @property
    def state(self) -> BreakerState:
        """The state as a caller would meet it now (an open breaker whose interval has passed
        lets a probe through: half-open)."""
        if self._state is BreakerState.OPEN and self._probe_due():
            return BreakerState.HALF_OPEN
        return self._state

    def accepting(self) -> bool:
        """Whether a call would be let through now (as itself, or as the probe)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probing
        )

    def mode(self) -> Literal["closed", "probe", "open"]:
        """For a caller with work waiting: whether calls go, one may (the probe), or none."""
        if self.state is BreakerState.CLOSED:
            return "closed"
        return "probe" if self.accepting() else "open"

    def check(self) -> None:
        """Raise ``ZoomCircuitOpen`` unless a call would be let through now; takes nothing."""
        if not self.accepting():
            BREAKER_REFUSED.labels(self.scope).inc()
            raise ZoomCircuitOpen(
                f"Zoom failed most calls lately; not sent (breaker {self.scope} open)",
                retry_after=self._until_probe(),
            )

    def admit(self) -> bool:
        """Let one call through, or raise ``ZoomCircuitOpen``. True when the call is the probe:
        its ``record`` decides the state."""
        self.check()
        if self.state is BreakerState.CLOSED:
            return False
        self._enter(BreakerState.HALF_OPEN)
        self._probing = True
        return True

    def record(self, probe: bool, failed: bool | None) -> None:
        """How an admitted call ended: ``failed`` True (no useful answer), False (answered), or
        None (cancelled, or ended by something that says nothing about Zoom)."""
        now = self._monotonic()
        if probe:
            self._probing = False
            if failed is None:
                return
            BREAKER_PROBES.labels(self.scope, "failed" if failed else "answered").inc()
            if failed:
                self._open(now)
            else:
                self._close()
            return
        if failed is None or self._state is not BreakerState.CLOSED:
            return  # a call admitted before the breaker opened: the probe decides now
        self._outcomes.append((now, failed))
        self._failures += failed
        self._trim(now)
        calls = len(self._outcomes)
        if calls >= self._config.min_calls and self._failures >= self._config.failure_ratio * calls:
            self._open(now)

    # -- internals ---------------------------------------------------------------------------

    def _probe_due(self) -> bool:
        return self._monotonic() - self._opened_at >= self._config.probe_interval_seconds

    def _until_probe(self) -> float:
        if self._state is BreakerState.HALF_OPEN:
            return self._config.probe_interval_seconds
        left = self._opened_at + self._config.probe_interval_seconds - self._monotonic()
        return max(left, 0.0) or self._config.probe_interval_seconds

    def _trim(self, now: float) -> None:
        horizon = now - self._config.window_seconds
        while self._outcomes and self._outcomes[0][0] < horizon:
            _, failed = self._outcomes.popleft()
            self._failures -= failed

    def _open(self, now: float) -> None:
        self._opened_at = now
        if self._state is not BreakerState.HALF_OPEN:
            log.warning(
                "zoom_breaker_open",
                scope=self.scope,
                calls=len(self._outcomes),
                failed=self._failures,
                probe_every_seconds=self._config.probe_interval_seconds,
            )
        self._enter(BreakerState.OPEN)

    def _close(self) -> None:
        self._outcomes.clear()
        self._failures = 0
        self.recoveries += 1
        log.info("zoom_breaker_closed", scope=self.scope)
        self._enter(BreakerState.CLOSED)

    def _enter(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        BREAKER_STATE.labels(self.scope).set(int(state))
        BREAKER_TRANSITIONS.labels(self.scope, state.name.lower()).inc()
