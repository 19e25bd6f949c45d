"""The worker's dependencies (Postgres, the broker): probed, counted, waited out.

``DependencyMonitor`` probes each dependency: ``/readyz`` asks it (a fresh round at most once a
second), a background loop asks every ``interval`` seconds, and every ``outage_interval``
seconds while one is down. It keeps ``zoom_worker_dependency_up{dependency}`` (1 or 0) and
``zoom_worker_dependency_outages_total{dependency}``, and logs ``dependency_down`` when a probe
first fails (with the error's class name), ``dependency_still_down`` every 30 s meanwhile and
``dependency_up`` (with ``down_seconds``) when it answers again.

It is the poison guard's ``Dependencies`` (``worker/pipeline/poison.py``): ``caused`` tells a
dependency's error (connection lost or refused, pool timeout, broker timeout) from anything
else, ``ready`` holds new work back while a dependency is known down, and ``settle`` probes now
and waits an outage out. A probe after a failure is *suspicious*: the database probe then first
drops pooled connections an outage broke (``pool.check()``), so that after a Postgres restart
no message meets a dead connection it would blame itself for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Final

import psycopg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from prometheus_client import Counter, Gauge
from structlog.stdlib import get_logger

from worker.runtime.resources import Pool

log = get_logger("worker.runtime.dependencies")

DEPENDENCY_UP = Gauge(
    "zoom_worker_dependency_up",
    "1 while the dependency (database, broker) answers its probe, 0 during an outage.",
    ["dependency"],
)
DEPENDENCY_OUTAGES = Counter(
    "zoom_worker_dependency_outages_total",
    "Outages seen: a dependency's probe failed after it had answered.",
    ["dependency"],
)

# A probe is told whether it follows a failure (``suspect``); it raises when the dependency
# does not answer.
Probe = Callable[[bool], Awaitable[None]]

_STILL_DOWN_LOG_SECONDS: Final = 30.0
_FRESH_SECONDS: Final = 1.0  # /readyz reuses a probe round this recent


class DependencyMonitor:
    """See the module docstring. Probes run on the event loop of ``running()``."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        timeout: float = 2.0,
        interval: float = 10.0,
        outage_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probes = dict(probes)
        self._timeout = timeout
        self._interval = interval
        self._outage_interval = outage_interval
        self._clock = clock
        self._down_since: dict[str, float] = {}
        self._told_at: dict[str, float] = {}
        self._all_up = asyncio.Event()
        self._all_up.set()
        self._wake = asyncio.Event()
        self._round: asyncio.Future[bool] | None = None
        self._round_ended = float("-inf")
        for name in self._probes:
            DEPENDENCY_UP.labels(name).set(1)

    # -- what the guard uses (worker.pipeline.poison.Dependencies) ---------------------------

    def caused(self, error: BaseException) -> bool:
        return is_dependency_error(error)

    async def ready(self) -> None:
        if not self._all_up.is_set():
            await self._all_up.wait()

    async def settle(self) -> bool:
        if await self.probe(suspect=True):
            return False
        self._wake.set()  # the loop probes at the outage pace from now on
        await self._all_up.wait()
        return True

    # -- what /readyz and the loop use ------------------------------------------------------

    def is_up(self, name: str) -> bool:
        return name not in self._down_since

    @property
    def down(self) -> list[str]:
        return sorted(self._down_since)

    async def check(self, name: str) -> bool:
        """Whether ``name`` answers, from a probe round at most a second old."""
        if self._clock() - self._round_ended > _FRESH_SECONDS:
            await self.probe()
        return self.is_up(name)

    async def probe(self, *, suspect: bool = False) -> bool:
        """Probe every dependency (joining a round under way); True when all answered."""
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._probe_all(suspect))
        return await asyncio.shield(self._round)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DependencyMonitor]:
        """Probe once now, then keep probing in the background for the block's duration."""
        await self.probe()
        task = asyncio.create_task(self._loop(), name="dependency-monitor")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            pace = self._outage_interval if self._down_since else self._interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pace):
                    await self._wake.wait()
            self._wake.clear()
            await self.probe(suspect=bool(self._down_since))
            self._remind()

    async def _probe_all(self, suspect: bool) -> bool:
        try:
            answers = await asyncio.gather(
                *(self._probe_one(name, probe, suspect) for name, probe in self._probes.items())
            )
        finally:
            self._round_ended = self._clock()
        return all(answers)

    async def _probe_one(self, name: str, probe: Probe, suspect: bool) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await probe(suspect or not self.is_up(name))
        except Exception as exc:
            self._mark_down(name, exc)
            return False
        self._mark_up(name)
        return True

    def _mark_down(self, name: str, error: BaseException) -> None:
        if name in self._down_since:
            return
        now = self._clock()
        self._down_since[name] = self._told_at[name] = now
        self._all_up.clear()
        DEPENDENCY_UP.labels(name).set(0)
        DEPENDENCY_OUTAGES.labels(name).inc()
        log.warning("dependency_down", dependency=name, error=type(error).__name__)

    def _mark_up(self, name: str) -> None:
        since = self._down_since.pop(name, None)
        if since is None:
            return
        self._told_at.pop(name, None)
        DEPENDENCY_UP.labels(name).set(1)
        log.info("dependency_up", dependency=name, down_seconds=round(self._clock() - since, 3))
        if not self._down_since:
            self._all_up.set()

    def _remind(self) -> None:
        now = self._clock()
        for name, since in self._down_since.items():
            if now - self._told_at.get(name, since) >= _STILL_DOWN_LOG_SECONDS:
                self._told_at[name] = now
                log.warning(
                    "dependency_still_down", dependency=name, down_seconds=round(now - since)
                )


# -- which errors are a dependency's ----------------------------------------------------------

# Postgres unreachable, restarting or out of connections (psycopg_pool's PoolTimeout is one),
# a socket reset, the broker not answering or not acknowledging in time.
_DEPENDENCY_ERRORS: Final = (psycopg.OperationalError, ConnectionError, KafkaTimeoutError)


def is_dependency_error(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is a dependency failing, not the message."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DEPENDENCY_ERRORS):
            return True
        if isinstance(current, KafkaError) and current.retriable:
            return True
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


# -- the probes -------------------------------------------------------------------------------


def database_probe(pool: Pool) -> Probe:
    """``SELECT 1`` on a pooled connection; after a failure, first drop broken pooled ones."""
    flushing: asyncio.Future[None] | None = None

    async def probe(suspect: bool) -> None:
        nonlocal flushing
        if suspect and (flushing is None or flushing.done()):
            # pool.check() takes the idle connections out while it tests them: shielded, so a
            # probe timing out never strands them outside the pool.
            flushing = asyncio.ensure_future(pool.check())
        if flushing is not None and not flushing.done():
            await asyncio.shield(flushing)
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    return probe


def broker_probe(producer: AIOKafkaProducer, topics: Iterable[str]) -> Probe:
    """A metadata round trip, and a leader for every partition of the topics we publish to.

    ``producer.partitions_for`` alone answers from cached metadata, broker or no broker.
    """
    names = tuple(topics)

    async def probe(_: bool) -> None:
        if not await producer.client.force_metadata_update():
            raise KafkaConnectionError("no broker answered a metadata request")
        cluster = producer.client.cluster
        for topic in names:
            for partition in await producer.partitions_for(topic):
                leader = cluster.leader_for_partition(TopicPartition(topic, partition))
                if leader is None or leader < 0:
                    raise KafkaConnectionError(f"{topic}[{partition}] has no leader")

    return probe
