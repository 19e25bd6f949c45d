"""The consume loop: records in, processed per key in order, offsets committed only when safe.

Lifetime: ``Engine`` is given an *unstarted* ``AIOKafkaConsumer`` (group id set, auto-commit
off, range assignor). ``run()`` starts it, checks the topics and assignor before joining the
group, subscribes with its own rebalance listener, consumes until ``stop`` is set or the
handler fails, then drains, commits and stops the consumer (leaving the group).

- Ordering: records of one key run one at a time in arrival order (worker/engine/lanes.py); keys run
  concurrently. At most ``max_buffered`` records are taken and unfinished at any time: the
  engine asks for no more, and pauses the assigned partitions while full.
- Commits: per partition up to the lowest unfinished offset (worker/offsets.py), every
  ``commit_interval_seconds``, on revoke and at shutdown.
- Revoke: no new records from those partitions; their taken records get the grace period to
  finish, the rest are cancelled (and not committed), then their offsets are committed before
  the rebalance goes on. Assigned partitions start from the committed offsets.
- The poll path never waits on processing; aiokafka heartbeats in the background. While full,
  the engine does not poll, so ``max_poll_interval_ms`` must exceed the slowest record, and
  ``rebalance_timeout_ms`` must exceed ``shutdown_grace_seconds`` (a revoke waits that long;
  aiokafka defaults it to the session timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from structlog.stdlib import get_logger

from worker.engine.errors import (
    HandlerFailed,
    TopicMissing,
    TopicsNotCoPartitioned,
    WrongAssignor,
)
from worker.engine.lanes import DrainResult, LaneRunner
from worker.engine.metrics import IN_FLIGHT, PARTITION_LAG
from worker.engine.offsets import OffsetTracker
from worker.engine.records import ConsumedRecord, RecordHandler, record_from

log = get_logger("worker.engine.consumer")

_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class EngineSettings:
    topics: tuple[str, ...]
    max_buffered: int = 64
    shutdown_grace_seconds: float = 25.0
    commit_interval_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not self.topics:
            raise ValueError("at least one topic is needed")
        if self.max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        if self.shutdown_grace_seconds < 0 or self.commit_interval_seconds <= 0:
            raise ValueError("grace must be >= 0 and commit interval > 0 seconds")


class Engine:
    """Runs one consumer's records through a handler; see the module docstring."""

    def __init__(
        self, consumer: AIOKafkaConsumer, handler: RecordHandler, settings: EngineSettings
    ) -> None:
        self._consumer = consumer
        self._settings = settings
        self._runner = LaneRunner(handler, self._on_done, IN_FLIGHT.set)
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._revoking: set[TopicPartition] = set()
        self._commit_lock = asyncio.Lock()
        self._running = False

    @property
    def running(self) -> bool:
        """True from subscribing (the group join may still be under way) until shutdown."""
        return self._running

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (returns) or the handler raises (HandlerFailed)."""
        started = time.monotonic()
        drained, in_flight = DrainResult(0, 0), 0
        try:
            await self._consumer.start()
            partitions = await self._check_startup()
            self._consumer.subscribe(list(self._settings.topics), listener=_Listener(self))
            self._running = True
            log.info(
                "engine_started",
                topics=list(self._settings.topics),
                partitions=partitions,
                # The engine's bound is on records taken and unfinished, which the worker sets
                # from MAX_BUFFERED_MESSAGES (at least MAX_IN_FLIGHT).
                max_buffered=self._settings.max_buffered,
            )
            try:
                await self._consume(stop)
            finally:
                self._running = False
                in_flight = self._runner.in_flight
                drained = await self._runner.drain(
                    lambda _: True, self._settings.shutdown_grace_seconds
                )
                await self._commit()
        finally:
            await self._consumer.stop()
        failure = self._runner.failure
        log.info(
            "engine_stopped",
            reason="handler_failed" if failure else "stop",
            in_flight=in_flight,
            cancelled=drained.cancelled,
            dropped=drained.dropped,
            seconds=round(time.monotonic() - started, 3),
        )
        if failure is not None:
            record = failure.record
            raise HandlerFailed(record.topic, record.partition, record.offset) from failure.error

    async def _check_startup(self) -> int:
        """Refuse a setup that could apply one event's messages concurrently."""
        # aiokafka has no public getter for the configured assignors.
        strategies = getattr(self._consumer, "_partition_assignment_strategy", ())
        names = [str(getattr(strategy, "name", strategy)) for strategy in strategies]
        if names != ["range"]:
            raise WrongAssignor(names)
        # ``consumer.topics()`` fetches every topic's metadata but keeps only the names, and the
        # consumer's own metadata covers only topics it already tracks: read the fetched one.
        cluster = await self._consumer._client.fetch_all_metadata()
        found = {t: cluster.partitions_for_topic(t) for t in self._settings.topics}
        missing = [topic for topic, partitions in found.items() if not partitions]
        if missing:
            raise TopicMissing(missing)
        counts = {topic: len(partitions) for topic, partitions in found.items()}
        if len(set(counts.values())) > 1:
            raise TopicsNotCoPartitioned(counts)
        return next(iter(counts.values()))

    async def _consume(self, stop: asyncio.Event) -> None:
        interrupts: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._runner.failed.wait()),
        }
        next_commit = time.monotonic() + self._settings.commit_interval_seconds
        # Hysteresis: once full, fetch again only when a quarter has drained. Resuming for every
        # single free slot made each record cost a pause, a resume and a fetch round.
        low_water = max(1, self._settings.max_buffered // 4)
        try:
            while not (stop.is_set() or self._runner.failed.is_set()):
                room = self._settings.max_buffered - self._runner.in_flight
                if room >= low_water or (room > 0 and not self._consumer.paused()):
                    self._resume_all()
                    await self._fetch(room, interrupts)
                else:
                    self._pause_all()
                    freed = asyncio.ensure_future(self._runner.changed())
                    await asyncio.wait(
                        {freed, *interrupts},
                        timeout=_POLL_SECONDS,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    freed.cancel()
                if time.monotonic() >= next_commit:
                    await self._commit()
                    await self._update_lag()
                    next_commit = time.monotonic() + self._settings.commit_interval_seconds
        finally:
            for waiter in interrupts:
                waiter.cancel()

    async def _fetch(self, room: int, interrupts: set[asyncio.Future[Any]]) -> None:
        """Take up to ``room`` records; abandoned early on stop or failure.

        getmany waits out a rebalance, so it runs in a task that the interrupts can cancel.
        The records are taken inside that task, in the same step getmany hands them out:
        taken later, a revoke could run in between and miss them.
        """

        async def fetch_and_take() -> None:
            self._take(
                await self._consumer.getmany(timeout_ms=int(_POLL_SECONDS * 1000), max_records=room)
            )

        fetch = asyncio.ensure_future(fetch_and_take())
        await asyncio.wait({fetch, *interrupts}, return_when=asyncio.FIRST_COMPLETED)
        if not fetch.done():
            # Safe: getmany gives records out only after its last await.
            fetch.cancel()
            await asyncio.wait({fetch})
        if not fetch.cancelled():
            fetch.result()  # raises Kafka's fatal errors

    def _take(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, consumed in batch.items():
            if tp in self._revoking:
                continue  # cannot happen (see _fetch); if it did: not taken, not committed
            tracker = self._trackers.setdefault(tp, OffsetTracker())
            for message in consumed:
                tracker.take(message.offset)
                self._runner.submit(record_from(message))

    def _on_done(self, record: ConsumedRecord) -> None:
        tracker = self._trackers.get(TopicPartition(record.topic, record.partition))
        if tracker is not None:
            tracker.done(record.offset)

    def _pause_all(self) -> None:
        running = self._consumer.assignment() - self._consumer.paused()
        if running:
            self._consumer.pause(*running)

    def _resume_all(self) -> None:
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)

    async def _commit(self, only: Iterable[TopicPartition] | None = None) -> None:
        """Commit each partition up to its lowest unfinished offset; failures wait a next try."""
        async with self._commit_lock:
            wanted = set(self._trackers) if only is None else set(only)
            offsets: dict[TopicPartition, int] = {}
            for tp in wanted & self._consumer.assignment():
                tracker = self._trackers.get(tp)
                offset = tracker.to_commit() if tracker else None
                if offset is not None:
                    offsets[tp] = offset
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                # The records stay uncommitted: redelivered to whoever owns them next.
                log.warning("commit_failed", error=type(exc).__name__, partitions=_names(offsets))
                return
            for tp, offset in offsets.items():
                tracker = self._trackers.get(tp)
                if tracker is not None:
                    tracker.mark_committed(offset)

    async def _update_lag(self) -> None:
        for tp in self._consumer.assignment():
            try:
                highwater = self._consumer.highwater(tp)
                tracker = self._trackers.get(tp)
                position = tracker.next_offset if tracker else None
                if position is None and highwater is not None:
                    position = await asyncio.wait_for(self._consumer.position(tp), 0.05)
            except (IllegalStateError, AssertionError, TimeoutError):
                continue  # reassigned meanwhile, or no position yet
            if highwater is not None and position is not None:
                PARTITION_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        started = time.monotonic()
        self._revoking |= revoked
        drained = DrainResult(0, 0)

        def belongs(record: ConsumedRecord) -> bool:
            return TopicPartition(record.topic, record.partition) in revoked

        in_flight = self._runner.count(belongs)
        try:
            drained = await self._runner.drain(belongs, self._settings.shutdown_grace_seconds)
            await self._commit(revoked)
        finally:
            for tp in revoked:
                self._trackers.pop(tp, None)
                _forget_lag(tp)
            self._revoking -= revoked
        log.info(
            "partitions_revoked",
            partitions=_names(revoked),
            in_flight=in_flight,
            cancelled=drained.cancelled,
            dropped=drained.dropped,
            seconds=round(time.monotonic() - started, 3),
        )

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=_names(assigned))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka awaits these from its coordinator task, so the rebalance waits for the drain."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        try:
            await self._engine.on_revoked(set(revoked))
        except Exception:
            # aiokafka would swallow it; say so loudly, the records stay uncommitted.
            log.exception("revoke_failed")

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._engine.on_assigned(set(assigned))


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)


def _forget_lag(tp: TopicPartition) -> None:
    with contextlib.suppress(KeyError):
        PARTITION_LAG.remove(tp.topic, str(tp.partition))
