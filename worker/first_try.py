"""``after_first_try``: tenacity's retry loop, entered only once a first try has failed.

Nearly every call succeeds at once, yet an ``AsyncRetrying`` costs its making and an action
chain per attempt: 20-30 µs a call, a tenth of the worker's CPU per message at Zoom latency 0
(py-spy over ``make bench``), spent on calls that never retried. Here the first try runs bare.
When it fails, a fresh ``AsyncRetrying`` gets that failure as the outcome of its own first
attempt, so its retry, stop, wait and before-sleep policies see exactly what they would have
seen had it made the try itself: the same attempt numbers, the same waits, the same logs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying

T = TypeVar("T")


async def after_first_try(
    attempt: Callable[[], Awaitable[T]], retrying: Callable[[], AsyncRetrying]
) -> T:
    """``attempt()`` once; when it raises an ``Exception``, ``attempt`` under ``retrying()``,
    that failure counted as the first attempt. ``BaseException`` (cancellation) goes through."""
    try:
        return await attempt()
    except Exception as exc:
        first: Exception | None = exc
    async for each in retrying():
        with each:
            if first is not None:
                failure, first = first, None
                raise failure
            return await attempt()
    raise AssertionError("unreachable: tenacity either returns or raises")
