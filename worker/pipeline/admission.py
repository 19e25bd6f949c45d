"""Admission to Zoom work: a global bound and a per-organizer bound, so one busy organizer
cannot take every slot while it waits on its Zoom account's rate limit.

Contract of ``Admission.slot``: it may block (never with a database connection or a rate-limit
token held) until both the organizer's and the global bound allow one more message; it
releases both when the block ends, also on cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from worker.pipeline.metrics import ACTIVE


@dataclass
class _Organizer:
    slots: asyncio.Semaphore
    users: int = 0


@dataclass
class Admission:
    active: int
    per_organizer: int
    _global: asyncio.Semaphore = field(init=False)
    _organizers: dict[str, _Organizer] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._global = asyncio.Semaphore(self.active)

    @asynccontextmanager
    async def slot(self, organizer: str) -> AsyncIterator[None]:
        entry = self._organizers.get(organizer)
        if entry is None:
            entry = self._organizers[organizer] = _Organizer(asyncio.Semaphore(self.per_organizer))
        entry.users += 1
        try:
            # The organizer's own bound first: a hot organizer queues here, not in the shared pool.
            async with entry.slots, self._global:
                ACTIVE.inc()
                try:
                    yield
                finally:
                    ACTIVE.dec()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._organizers[organizer]
