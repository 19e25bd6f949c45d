"""Run records one at a time per key, different keys concurrently.

A *lane* is the queue of one key (the calendar event id, the same across the co-partitioned
event topics); records without a key get one lane per (topic, partition). Each busy lane has one
task that runs its records in arrival order, each in a task of its own so that one record can be
cancelled without losing the rest of the lane.

The runner does not bound concurrency: the engine takes no more records than it has room for,
and ``in_flight`` counts every record taken and not yet finished, queued ones included.
When the handler raises, the failure is kept, that lane stops (its records stay unfinished)
and ``failed`` is set; the engine then drains the others and stops.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.engine.records import ConsumedRecord, RecordHandler

LaneKey = tuple[bytes] | tuple[str, int]
Belongs = Callable[[ConsumedRecord], bool]


def lane_of(record: ConsumedRecord) -> LaneKey:
    if record.key is None:
        return (record.topic, record.partition)
    return (record.key,)


@dataclass(frozen=True)
class LaneFailure:
    record: ConsumedRecord
    error: BaseException


@dataclass(frozen=True)
class DrainResult:
    """What a drain did: records it cancelled while running, and queued ones it dropped."""

    cancelled: int
    dropped: int


@dataclass
class _Lane:
    queue: deque[ConsumedRecord] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: asyncio.Task[None] | None = None  # the handler call for queue[0]
    blocked: bool = False  # its handler raised: run nothing more here


class LaneRunner:
    """Feeds records to a handler; calls ``on_done`` for each record that completed."""

    def __init__(
        self,
        handler: RecordHandler,
        on_done: Callable[[ConsumedRecord], None],
        on_in_flight: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._handler = handler
        self._on_done = on_done
        self._on_in_flight = on_in_flight
        self._lanes: dict[LaneKey, _Lane] = {}
        self._in_flight = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.failure: LaneFailure | None = None
        self.failed = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, record: ConsumedRecord) -> None:
        """Queue ``record`` behind earlier records of its lane; never blocks."""
        key = lane_of(record)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.queue.append(record)
        self._count(+1)
        if lane.task is None and not lane.blocked:
            lane.task = asyncio.create_task(self._run_lane(key, lane), name=f"lane-{key!r}")

    def changed(self) -> asyncio.Future[None]:
        """A future done when a record next finishes, fails or is dropped.

        Registered at the call, not when first awaited: a record finishing in between (its
        task woken earlier) would otherwise go unnoticed, and a drain sit out its whole grace.
        """
        waiter = asyncio.get_running_loop().create_future()
        self._waiters = [w for w in self._waiters if not w.done()]  # cancelled ones go
        self._waiters.append(waiter)
        return waiter

    async def drain(self, belongs: Belongs, grace_seconds: float) -> DrainResult:
        """Wait up to ``grace_seconds`` until no record that ``belongs`` is unfinished.

        Then drop the queued ones left and cancel the running ones, waiting for the cancellation
        to go through: on return no such record runs or waits, and none will start.
        Records of a failed lane are dropped at once.
        """
        deadline = time.monotonic() + grace_seconds
        dropped = 0
        while True:
            dropped += self._drop(belongs, blocked_only=True)
            remaining = deadline - time.monotonic()
            if not self._holding(belongs) or remaining <= 0:
                break
            waiter = self.changed()
            await asyncio.wait({waiter}, timeout=remaining)
            waiter.cancel()
        dropped += self._drop(belongs, blocked_only=False)
        running = [
            lane.current
            for lane in self._lanes.values()
            if lane.current is not None and lane.queue and belongs(lane.queue[0])
        ]
        for task in running:
            task.cancel()
        # The handler must let cancellation through; the lanes then discard those records.
        while True:
            dropped += self._drop(belongs, blocked_only=True)
            if not self._holding(belongs):
                return DrainResult(cancelled=len(running), dropped=dropped)
            await self.changed()

    def count(self, belongs: Belongs) -> int:
        """How many unfinished records (running or queued) ``belongs`` matches."""
        return sum(belongs(record) for lane in self._lanes.values() for record in lane.queue)

    def _holding(self, belongs: Belongs) -> bool:
        return any(belongs(record) for lane in self._lanes.values() for record in lane.queue)

    def _drop(self, belongs: Belongs, *, blocked_only: bool) -> int:
        """Remove matching records that are not running now; returns how many."""
        dropped = 0
        for key, lane in list(self._lanes.items()):
            if blocked_only and not lane.blocked:
                continue
            head = [] if lane.blocked or lane.current is None else [lane.queue.popleft()]
            kept = [record for record in lane.queue if not belongs(record)]
            dropped += len(lane.queue) - len(kept)
            lane.queue = deque(head + kept)
            if not lane.queue and lane.task is None:
                del self._lanes[key]
        if dropped:
            self._count(-dropped)
        return dropped

    async def _run_lane(self, key: LaneKey, lane: _Lane) -> None:
        while lane.queue:
            record = lane.queue[0]
            lane.current = asyncio.create_task(self._handler(record))
            # wait() rather than await: the record's cancellation must not end the lane.
            await asyncio.wait({lane.current})
            call, lane.current = lane.current, None
            if call.cancelled():
                lane.queue.popleft()
                self._count(-1)
                continue
            error = call.exception()
            if error is not None:
                lane.blocked = True
                if self.failure is None:
                    self.failure = LaneFailure(record, error)
                self.failed.set()
                self._notify()
                break
            lane.queue.popleft()
            self._on_done(record)
            self._count(-1)
        lane.task = None
        if not lane.queue:
            del self._lanes[key]

    def _count(self, delta: int) -> None:
        self._in_flight += delta
        self._on_in_flight(self._in_flight)
        if delta < 0:
            self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
