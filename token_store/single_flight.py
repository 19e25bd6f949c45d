"""In-process coalescing: concurrent callers with the same key share one running call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """``run(key, fn)`` starts ``fn()`` unless a call for ``key`` is already running, in which
    case it waits for that one; every waiter gets the same result or exception.

    The shared call runs as its own task and is shielded, so one cancelled waiter does not
    cancel it for the others. Not thread-safe: one instance per event loop.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[T]] = {}

    async def run(self, key: K, fn: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: K, done: asyncio.Task[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # mark retrieved: waiters may all have been cancelled
