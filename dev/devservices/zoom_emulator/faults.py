"""Fault injection: rules that delay, fail or drop requests before (or after) Zoom logic runs.

A rule targets one endpoint (``"POST /oauth/token"``, ``"PATCH /v2/meetings/{meetingId}"``) or
every endpoint (``endpoint=None``), fires with ``probability`` and at most ``count`` times
(``None``: no limit). Latency rules add up; of the other rules the first that fires decides:

- ``error``: answer ``status`` (500/502/503) with a Zoom-style JSON body;
- ``non_json``: answer ``status`` with an HTML body, as Zoom's edge sometimes does;
- ``rate_limit``: a per-second 429, with ``Retry-After`` in seconds, as an HTTP date, as an
  ISO time, or absent;
- ``drop``: close the connection without an answer; ``when="after"`` first applies the request
  (the refresh rotates, the meeting exists) and then drops: the "lost answer" case.
"""

from __future__ import annotations

import random
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["latency", "error", "non_json", "rate_limit", "drop"]


class Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    endpoint: str | None = None
    count: int | None = Field(None, ge=1)
    probability: float = Field(1.0, ge=0, le=1)
    # latency
    latency_ms: float = Field(0.0, ge=0)
    distribution: Literal["fixed", "uniform", "lognormal"] = "fixed"
    latency_max_ms: float = Field(0.0, ge=0)  # uniform: between latency_ms and this
    sigma: float = Field(0.5, gt=0)  # lognormal: median latency_ms, this shape
    # error / non_json
    status: int = Field(503, ge=400, le=599)
    # rate_limit
    retry_after: Literal["seconds", "http_date", "iso", "none"] = "seconds"
    retry_after_seconds: float = Field(1.0, ge=0)
    # drop
    when: Literal["before", "after"] = "before"

    def delay_seconds(self, rng: random.Random) -> float:
        if self.distribution == "uniform":
            high = max(self.latency_max_ms, self.latency_ms)
            return rng.uniform(self.latency_ms, high) / 1000
        if self.distribution == "lognormal":
            return self.latency_ms * rng.lognormvariate(0.0, self.sigma) / 1000
        return self.latency_ms / 1000


def parse_fault(spec: str) -> Fault:
    """``kind=error,status=503,count=2,endpoint=POST /oauth/token`` -> Fault (for the CLI)."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"fault field {part!r} is not name=value")
        fields[name.strip()] = value.strip()
    return Fault.model_validate(fields)


class FaultPlan:
    """The active rules and how often each has fired; safe to change from any thread."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._remaining: list[int | None] = []
        self._fired: list[int] = []
        self._rng = random.Random(seed)

    def add(self, *faults: Fault) -> None:
        with self._lock:
            for fault in faults:
                self._rules.append(fault)
                self._remaining.append(fault.count)
                self._fired.append(0)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._remaining.clear()
            self._fired.clear()

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def fired(self) -> list[int]:
        """How many times each rule fired, in the order they were added."""
        with self._lock:
            return list(self._fired)

    def pick(self, endpoint: str) -> tuple[float, Fault | None]:
        """Seconds of injected delay and the failure (if any) for one request to ``endpoint``."""
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for i, fault in enumerate(self._rules):
                if fault.endpoint not in (None, endpoint) or self._remaining[i] == 0:
                    continue
                if fault.kind != "latency" and chosen is not None:
                    continue
                if self._rng.random() >= fault.probability:
                    continue
                remaining = self._remaining[i]
                if remaining is not None:
                    self._remaining[i] = remaining - 1
                self._fired[i] += 1
                if fault.kind == "latency":
                    delay += fault.delay_seconds(self._rng)
                else:
                    chosen = fault
        return delay, chosen
