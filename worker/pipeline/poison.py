"""The poison-message policy: no one message stops the worker or holds its partition for long.

``PoisonGuard`` is the ``RecordHandler`` the engine runs (``worker/engine/records.py``); it
wraps the ``Processor``. Its contract:

- **Blocks** only on the dependencies: before each attempt while Postgres or the broker is known
  to be down (``Dependencies.ready``), and after a failure that is a dependency's (connection
  lost or refused, pool timeout, broker timeout) for as long as that outage lasts
  (``Dependencies.settle``). It never gives up on an outage. While it waits it holds no database
  connection and no admission slot; the engine's buffer fills with waiting records and fetching
  pauses.
- **Retries** a message that fails any other way up to ``RetryPolicy.attempts`` times in all,
  with jittered exponential backoff (0.2 s doubling, at most 2 s). An outage met on the way
  starts the count afresh: the message was not at fault. Running the processor again on the
  same record is safe: it is idempotent (a stored intent finds the meeting an earlier attempt
  made; a stored result is published again under the same ``message_id``).
- **Parks** a message that still fails while the dependencies answer: the record, untouched, on
  the dead-letter topic (reason ``processing_error``, the exception's class name in
  ``x-dlq-exception``), then a ``meeting.failed`` (``processing_error``) when its event id can be
  read; counted (``zoom_worker_poison_messages_total``) and logged once (``poison_message``) with
  its topic, partition, offset, event id and the exception's class and place, never the
  exception's text or the record's value. Then it returns normally: the engine commits past the
  record and the partition flows on.
- **Raises** (``ParkingFailed``) only when parking keeps failing while the dependencies answer
  (the dead-letter topic missing or not writable, say): then only not committing keeps the
  record, so the engine stops the worker (exit non-zero) and the record comes back after the
  restart.
- Lets **cancellation** (shutdown, the end of a revoke's grace period) through at any point; the
  record is then not committed.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Protocol

from structlog.stdlib import get_logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from schemas import FailureReason, MeetingFailed, SalvagedIds, salvage_ids
from schemas.dead_letter import dead_letter_headers
from worker.engine.records import ConsumedRecord, RecordHandler
from worker.first_try import after_first_try
from worker.pipeline import metrics, results
from worker.pipeline.ports import Clock, Publisher
from worker.pipeline.processor import Topics

log = get_logger("worker.pipeline.poison")

REASON = FailureReason.PROCESSING_ERROR


class Dependencies(Protocol):
    """Postgres and the broker as the guard sees them (``worker/runtime/dependencies.py``)."""

    def caused(self, error: BaseException) -> bool:
        """Whether ``error`` is a dependency failing rather than anything about the message."""

    async def ready(self) -> None:
        """Return at once unless a dependency is known to be down; then wait until it answers."""

    async def settle(self) -> bool:
        """Probe every dependency now; while one is down, wait until all answer again.
        True when there was an outage to wait out, False when all answered at once."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    first_wait_seconds: float = 0.2
    max_wait_seconds: float = 2.0
    jitter_seconds: float = 0.2


class ParkingFailed(Exception):
    """A poison message could not be parked while the dependencies answered."""


class _GaveUp(Exception):
    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(type(error).__name__)
        self.error, self.attempts = error, attempts


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PoisonGuard:
    """A ``RecordHandler`` around the processor; see the module docstring for its contract."""

    def __init__(
        self,
        process: RecordHandler,
        *,
        topics: Topics,
        publisher: Publisher,
        dependencies: Dependencies,
        clock: Clock = _utc_now,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._process = process
        self._topics = topics
        self._publisher = publisher
        self._dependencies = dependencies
        self._clock = clock
        self._policy = policy or RetryPolicy()

    async def __call__(self, record: ConsumedRecord) -> None:
        await self.shield(record, lambda: self._process(record))

    async def shield(
        self, record: ConsumedRecord, operation: Callable[[], Awaitable[object]]
    ) -> bool:
        """Run ``operation`` on ``record``'s behalf under this policy; True when it was parked.
        (A scheduled retry runs through here too: ``worker/pipeline/retries.py``.)"""
        try:
            await self._persist(record, "process", operation)
        except _GaveUp as gave_up:
            await self._park(record, gave_up.error, gave_up.attempts)
            return True
        return False

    async def _persist(
        self, record: ConsumedRecord, step: str, operation: Callable[[], Awaitable[object]]
    ) -> None:
        """Run ``operation`` until it succeeds, outages waited out; ``_GaveUp`` when it failed
        every attempt and the dependencies answer."""
        policy = self._policy
        while True:
            attempts = 0

            async def attempt() -> None:
                nonlocal attempts
                attempts += 1
                await self._through_outages(operation)

            try:
                await after_first_try(
                    attempt,
                    lambda: AsyncRetrying(
                        retry=retry_if_exception_type(Exception),
                        stop=stop_after_attempt(policy.attempts),
                        wait=wait_exponential_jitter(
                            initial=policy.first_wait_seconds,
                            max=policy.max_wait_seconds,
                            jitter=policy.jitter_seconds,
                        ),
                        before_sleep=lambda state: _log_retry(record, step, state),
                        reraise=True,
                    ),
                )
                return
            except Exception as exc:
                error = exc
            if not await self._dependencies.settle():
                raise _GaveUp(error, attempts)
            # An outage came and went meanwhile: the message was not at fault; count afresh.

    async def _through_outages(self, operation: Callable[[], Awaitable[object]]) -> None:
        while True:
            await self._dependencies.ready()
            try:
                await operation()
                return
            except Exception as exc:
                if not (self._dependencies.caused(exc) and await self._dependencies.settle()):
                    raise
            # A dependency was down and answers again: try again, not counted as an attempt.

    async def _park(self, record: ConsumedRecord, error: Exception, attempts: int) -> None:
        name, where = type(error).__name__, _where(error)
        headers = dead_letter_headers(
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=REASON.value,
            detail=f"{name} at {where}, {attempts} attempts",
            failed_at=self._clock(),
            exception=name,
        )
        ids = salvage_ids(record.value or b"")
        failed = self._failed_result(record, ids, attempts)
        try:
            await self._persist(
                record,
                "dead_letter",
                lambda: self._publisher.publish(
                    self._topics.dead_letter, record.key, record.value, tuple(headers)
                ),
            )
            metrics.DEAD_LETTERED.labels(REASON.value).inc()
            if failed is not None:
                await self._persist(
                    record,
                    "meeting_failed",
                    lambda: self._publisher.publish(
                        self._topics.failed,
                        failed.event_id.encode() if failed.event_id else None,
                        failed.to_bytes(),
                        results.result_headers(failed),
                    ),
                )
                metrics.FAILURES.labels(REASON.value).inc()
        except _GaveUp as gave_up:
            log.error(
                "poison_message_not_parked",
                **_coordinates(record, ids),
                error=name,
                at=where,
                publish_error=type(gave_up.error).__name__,
            )
            raise ParkingFailed(
                f"{record.topic}[{record.partition}]@{record.offset} failed with {name} and "
                f"could not be parked: {type(gave_up.error).__name__}"
            ) from gave_up.error
        metrics.POISON.labels(record.topic).inc()
        metrics.MESSAGES.labels(record.topic, "poison").inc()
        log.error(
            "poison_message",
            **_coordinates(record, ids),
            error=name,
            at=where,
            attempts=attempts,
            dead_letter_topic=self._topics.dead_letter,
            meeting_failed=failed is not None,
        )

    def _failed_result(
        self, record: ConsumedRecord, ids: SalvagedIds, attempts: int
    ) -> MeetingFailed | None:
        """The ``meeting.failed`` to publish, when the record's event id can be read."""
        if ids.event_id is None:
            return None
        source_id = ids.message_id or f"{record.topic}/{record.partition}/{record.offset}"
        kind = self._topics.kind_of(record.topic)
        try:
            return results.processing_error(ids, source_id, kind, attempts, self._clock())
        except Exception as exc:  # the record is parked either way; this one is best effort
            log.warning(
                "poison_result_unbuilt", **_coordinates(record, ids), error=type(exc).__name__
            )
            return None


def _coordinates(record: ConsumedRecord, ids: SalvagedIds) -> dict[str, object]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "event_id": ids.event_id,
    }


_OURS = frozenset({"worker", "token_store", "schemas", "connect", "migrations"})


def _where(error: BaseException) -> str:
    """Where ``error`` came from: the innermost frame of our code and, when the error was raised
    deeper (in a library), that frame too; ``package/module.py:line in function``, no values."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown"
    ours = [frame for frame in frames if _OURS & set(PurePath(frame.filename).parts[:-1])]
    inner = frames[-1]
    if not ours or ours[-1] is inner:
        return _frame(inner)
    return f"{_frame(ours[-1])} (raised in {_frame(inner)})"


def _frame(frame: traceback.FrameSummary) -> str:
    parts = PurePath(frame.filename).parts
    roots = [i for i, part in enumerate(parts[:-1]) if part in _OURS]
    start = roots[-1] if roots else len(parts) - 2
    return f"{'/'.join(parts[start:])}:{frame.lineno} in {frame.name}"


def _log_retry(record: ConsumedRecord, step: str, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "message_retry",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        step=step,
        attempt=state.attempt_number,
        error=type(error).__name__ if error is not None else None,
        at=_where(error) if error is not None else None,
        wait_seconds=round(state.upcoming_sleep, 3),
    )
