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
- Status (worker/engine/status.py): ``status()`` tells committed lag and the oldest unfinished
  record's age per assigned partition, and how long ago the loop last made progress, from the
  engine's own state: its last commit per partition (or the offset found at assignment) and
  the fetcher's high watermark. While partitions are paused their high watermark is not
  fetched, so every ``end_offsets_interval_seconds`` the engine asks the broker for theirs.
  ``/metrics`` renders it for every running engine (``ENGINES``).
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
from worker.engine.metrics import ENGINES, PARTITION_LAG
from worker.engine.offsets import OffsetTracker
from worker.engine.records import ConsumedRecord, RecordHandler, record_from
from worker.engine.status import EngineStatus, PartitionStatus

log = get_logger("worker.engine.consumer")

_POLL_SECONDS = 0.2
_END_OFFSETS_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class EngineSettings:
    topics: tuple[str, ...]
    max_buffered: int = 64
    shutdown_grace_seconds: float = 25.0
    commit_interval_seconds: float = 1.0
    end_offsets_interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.topics:
            raise ValueError("at least one topic is needed")
        if self.max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        if self.shutdown_grace_seconds < 0 or self.commit_interval_seconds <= 0:
            raise ValueError("grace must be >= 0 and commit interval > 0 seconds")
        if self.end_offsets_interval_seconds <= 0:
            raise ValueError("the end offsets interval must be > 0 seconds")


class Engine:
    """Runs one consumer's records through a handler; see the module docstring."""

    def __init__(
        self, consumer: AIOKafkaConsumer, handler: RecordHandler, settings: EngineSettings
    ) -> None:
        self._consumer = consumer
        self._settings = settings
        self._group = str(getattr(consumer, "_group_id", None) or "")
        self._runner = LaneRunner(handler, self._on_done)
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._assigned: set[TopicPartition] = set()
        self._revoking: set[TopicPartition] = set()
        # The group's committed offset as far as this engine knows: its own last commit, or
        # before that the offset it found at assignment.
        self._group_offsets: dict[TopicPartition, int] = {}
        self._end_offsets: dict[TopicPartition, int] = {}  # asked for while paused
        self._end_offsets_asked = float("-inf")
        self._end_offsets_task: asyncio.Task[None] | None = None
        self._progress_at = time.monotonic()
        self._commit_lock = asyncio.Lock()
        self._running = False

    @property
    def running(self) -> bool:
        """True from subscribing (the group join may still be under way) until shutdown."""
        return self._running

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (returns) or the handler raises (HandlerFailed)."""
        started = self._progress_at = time.monotonic()
        drained, in_flight = DrainResult(0, 0), 0
        ENGINES.watch(self)
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
            ENGINES.forget(self)
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
                    freed = self._runner.changed()
                    await asyncio.wait(
                        {freed, *interrupts},
                        timeout=_POLL_SECONDS,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    freed.cancel()
                if time.monotonic() >= next_commit:
                    await self._commit()
                    await self._update_lag()
                    self._ask_end_offsets()
                    next_commit = time.monotonic() + self._settings.commit_interval_seconds
        finally:
            for waiter in interrupts:
                waiter.cancel()
            if self._end_offsets_task is not None:
                self._end_offsets_task.cancel()

    async def _fetch(self, room: int, interrupts: set[asyncio.Future[Any]]) -> None:
        """Take up to ``room`` records; abandoned early on stop or failure.

        getmany waits out a rebalance, so it runs in a task that the interrupts can cancel.
        The records are taken inside that task, in the same step getmany hands them out:
        taken later, a revoke could run in between and miss them.
        """

        async def fetch_and_take() -> None:
            batch = await self._consumer.getmany(
                timeout_ms=int(_POLL_SECONDS * 1000), max_records=room
            )
            self._take(batch)
            if not batch and self._runner.in_flight == 0:
                self._progress_at = time.monotonic()  # polled with nothing to do

        fetch = asyncio.ensure_future(fetch_and_take())
        await asyncio.wait({fetch, *interrupts}, return_when=asyncio.FIRST_COMPLETED)
        if not fetch.done():
            # Safe: getmany gives records out only after its last await.
            fetch.cancel()
            await asyncio.wait({fetch})
        if not fetch.cancelled():
            fetch.result()  # raises Kafka's fatal errors

    def _take(self, batch: dict[TopicPartition, list[Any]]) -> None:
        now = time.monotonic()
        for tp, consumed in batch.items():
            if tp in self._revoking:
                continue  # cannot happen (see _fetch); if it did: not taken, not committed
            if not consumed:
                continue
            if tp not in self._trackers:
                # The first record taken since assignment: the group stands at its offset.
                self._group_offsets.setdefault(tp, consumed[0].offset)
            tracker = self._trackers.setdefault(tp, OffsetTracker())
            for message in consumed:
                tracker.take(message.offset, now)
                self._runner.submit(record_from(message))
            self._progress_at = now

    def _on_done(self, record: ConsumedRecord) -> None:
        self._progress_at = time.monotonic()
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
                    self._group_offsets[tp] = offset

    async def _update_lag(self) -> None:
        for tp in self._consumer.assignment():
            try:
                highwater = self._consumer.highwater(tp)
                tracker = self._trackers.get(tp)
                position = tracker.next_offset if tracker else None
                if position is None and highwater is not None:
                    async with asyncio.timeout(0.05):
                        position = await self._consumer.position(tp)
            except (IllegalStateError, AssertionError, TimeoutError):
                continue  # reassigned meanwhile, or no position yet
            if position is not None and tp not in self._trackers and self._holds(tp):
                # Nothing taken since assignment: the position is the group's committed offset.
                self._group_offsets.setdefault(tp, position)
            if highwater is not None and position is not None:
                PARTITION_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    def _ask_end_offsets(self) -> None:
        """Every ``end_offsets_interval_seconds``, the end offsets of the paused partitions
        (their high watermark is not fetched while paused), in the background."""
        now = time.monotonic()
        if now - self._end_offsets_asked < self._settings.end_offsets_interval_seconds:
            return
        if self._end_offsets_task is not None and not self._end_offsets_task.done():
            return
        paused = {tp for tp in self._consumer.paused() if self._holds(tp)}
        if not paused:
            return
        self._end_offsets_asked = now
        self._end_offsets_task = asyncio.create_task(self._read_end_offsets(paused))

    async def _read_end_offsets(self, partitions: set[TopicPartition]) -> None:
        try:
            async with asyncio.timeout(_END_OFFSETS_TIMEOUT_SECONDS):
                ends = await self._consumer.end_offsets(sorted(partitions))
        except (KafkaError, IllegalStateError, TimeoutError) as exc:
            log.debug("end_offsets_failed", error=type(exc).__name__)
            return
        for tp, end in ends.items():
            if self._holds(tp) and end is not None:
                self._end_offsets[tp] = max(end, self._end_offsets.get(tp, end))

    def _holds(self, tp: TopicPartition) -> bool:
        return tp in self._assigned and tp not in self._revoking

    def status(self, now: float | None = None) -> EngineStatus:
        """This engine's status now (worker/engine/status.py); cheap, no I/O."""
        now = time.monotonic() if now is None else now
        partitions = []
        for tp in sorted(self._assigned - self._revoking):
            tracker = self._trackers.get(tp)
            taken_at = tracker.oldest_taken_at() if tracker is not None else None
            age = 0.0 if taken_at is None else max(0.0, now - taken_at)
            partitions.append(PartitionStatus(tp.topic, tp.partition, self._committed_lag(tp), age))
        return EngineStatus(
            group=self._group,
            progress_age_seconds=max(0.0, now - self._progress_at),
            in_flight=self._runner.in_flight,
            partitions=tuple(partitions),
        )

    def _committed_lag(self, tp: TopicPartition) -> int | None:
        committed = self._group_offsets.get(tp)
        try:
            highwater = self._consumer.highwater(tp)
        except (IllegalStateError, AssertionError):
            highwater = None
        ends = [end for end in (highwater, self._end_offsets.get(tp)) if end is not None]
        if committed is None or not ends:
            return None
        return max(0, max(ends) - committed)

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
                self._group_offsets.pop(tp, None)
                self._end_offsets.pop(tp, None)
                _forget_lag(tp)
            self._assigned -= revoked
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
        for tp in assigned:  # whatever was known of them before is someone else's since
            self._group_offsets.pop(tp, None)
            self._end_offsets.pop(tp, None)
        self._assigned |= assigned
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
