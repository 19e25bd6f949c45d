"""What the long-running commands (``run``, ``serve``) open the same way."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from token_store import TokenStore, ZoomOAuth
from token_store.store import RowReader
from token_store.table import READ_EACH, SealedRow
from worker.runtime.config import ServiceSettings
from worker.statement_batches import StatementBatcher, Together

Pool = AsyncConnectionPool[AsyncConnection]


class PoolMetrics(Collector):
    """``zoom_worker_db_pool_*`` from psycopg_pool's ``get_stats()``, read at each scrape, over
    every pool ``open_pool`` opened and has not closed (one per process outside tests):
    ``connections{state}`` ``size`` (open or opening), ``in_use`` (lent out or opening),
    ``idle`` (in the pool); ``waiting`` (requests queued for a connection); ``max_connections``."""

    def __init__(self) -> None:
        self._pools: list[Pool] = []

    def watch(self, pool: Pool) -> None:
        self._pools.append(pool)

    def forget(self, pool: Pool) -> None:
        if pool in self._pools:
            self._pools.remove(pool)

    def describe(self) -> Iterable[Metric]:
        return list(self._families(watching=False))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(watching=True))

    def _families(self, *, watching: bool) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "zoom_worker_db_pool_connections",
            "Database pool connections by state: size (open or opening), in_use, idle.",
            labels=["state"],
        )
        waiting = GaugeMetricFamily(
            "zoom_worker_db_pool_waiting", "Requests waiting for a pooled database connection."
        )
        ceiling = GaugeMetricFamily(
            "zoom_worker_db_pool_max_connections", "The database pool's maximum size."
        )
        pools = list(self._pools) if watching else []
        if pools:
            stats = [pool.get_stats() for pool in pools]
            size = sum(s.get("pool_size", 0) for s in stats)
            idle = sum(s.get("pool_available", 0) for s in stats)
            connections.add_metric(["size"], size)
            connections.add_metric(["in_use"], max(0, size - idle))
            connections.add_metric(["idle"], idle)
            waiting.add_metric([], sum(s.get("requests_waiting", 0) for s in stats))
            ceiling.add_metric([], sum(s.get("pool_max", 0) for s in stats))
        yield from (connections, waiting, ceiling)


POOL_METRICS = PoolMetrics()
REGISTRY.register(POOL_METRICS)


def awaiting(coro: object) -> Iterator[str]:
    """Where a suspended coroutine waits, outermost first: its chain of awaits (``Task.
    get_stack`` shows only the outermost frame of a suspended coroutine)."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            yield f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        awaited = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
        if frame is not None and frame.f_code.co_name in ("__aenter__", "__aexit__"):
            # an @asynccontextmanager awaits its generator through ``anext``, which hides it
            manager = frame.f_locals.get("self")
            if isinstance(manager, contextlib._AsyncGeneratorContextManager):
                awaited = manager.gen
        coro = awaited


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the graceful-shutdown trigger."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    return stop


def dump_tasks() -> None:
    """SIGUSR1: every asyncio task and where it waits, to stderr (``kubectl exec ... kill
    -USR1 1`` on a worker that looks stuck; ``py-spy dump`` sees only the idle event loop)."""
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio tasks (SIGUSR1) ---", file=sys.stderr)
    for task in tasks:
        print(f"{task.get_name()}:", file=sys.stderr)
        try:
            for line in awaiting(task.get_coro()):
                print(f"  {line}", file=sys.stderr)
        except Exception as exc:  # a diagnostic: never the worker's end
            print(f"  (not followed further: {type(exc).__name__})", file=sys.stderr)
    print("--- end of tasks ---", file=sys.stderr, flush=True)


# psycopg_pool retries a failed connection with a doubling delay until this many seconds have
# passed, then gives up until someone needs one (and tries again at once). Its default, five
# minutes, lets that delay reach two minutes: after a Postgres outage the pool would sit out the
# delay long after the database answers again.
RECONNECT_SECONDS = 10.0


async def in_utc(conn: AsyncConnection) -> None:
    """Each new connection's session in UTC. psycopg reads a ``timestamptz`` back in the
    session's zone, and the contract keeps instants within years 0001-9999 in UTC only: read
    in a zone west of UTC, ``0001-01-01T03:00:00Z`` would be year 0, which Python cannot hold."""
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()  # the pool wants its connections idle


async def open_pool(
    stack: AsyncExitStack,
    settings: ServiceSettings,
    max_size: int,
    *,
    wait_seconds: float = 30.0,
    application_name: str = "zoom-worker",
) -> Pool:
    """A connection pool, open and ready (or failing within 30 s), closed with ``stack``.

    ``wait_seconds``: how long ``pool.connection()`` waits for a connection (then ``PoolTimeout``).
    """
    pool: Pool = AsyncConnectionPool(
        settings.dsn(),
        min_size=min(2, max_size),
        max_size=max_size,
        timeout=wait_seconds,
        reconnect_timeout=RECONNECT_SECONDS,
        configure=in_utc,
        # Behind PgBouncer in transaction mode (before 1.21) a server-side prepared statement
        # made on one server connection is unknown on the next: never prepare there.
        kwargs={"application_name": application_name}
        | ({} if settings.database_prepared_statements else {"prepare_threshold": None}),
        open=False,
    )
    await pool.open()
    stack.push_async_callback(pool.close)
    POOL_METRICS.watch(pool)
    stack.callback(POOL_METRICS.forget, pool)
    # Not ``open(wait=True)``: the pool stops retrying after RECONNECT_SECONDS, a new request
    # makes it try again, so ask until a connection comes.
    deadline = time.monotonic() + 30
    while True:
        try:
            async with pool.connection(timeout=min(5.0, max(0.1, deadline - time.monotonic()))):
                return pool
        except PoolTimeout:
            if time.monotonic() >= deadline:
                raise


def token_store(
    settings: ServiceSettings,
    pool: Pool,
    http: httpx.AsyncClient,
    *,
    max_concurrent_refreshes: int | None = None,
    batches: StatementBatcher | None = None,
) -> TokenStore:
    """``batches``: concurrent token reads go to Postgres together (the worker's hot path)."""
    secret = settings.zoom_client_secret
    oauth = ZoomOAuth(
        http,
        oauth_base_url=settings.zoom_oauth_base_url,
        api_base_url=settings.zoom_api_base_url,
        client_id=settings.zoom_client_id or "",
        client_secret=secret.get_secret_value() if secret else "",
    )
    return TokenStore(
        pool,
        settings.key_ring(),
        oauth,
        refresh_margin=timedelta(seconds=settings.token_refresh_margin_seconds),
        max_concurrent_refreshes=max_concurrent_refreshes,
        read_row=batched_token_reads(batches) if batches else None,
    )


_READ_EACH = Together(READ_EACH)


def batched_token_reads(batches: StatementBatcher) -> RowReader:
    async def read_row(user_id: str) -> SealedRow | None:
        (ran,) = await batches.run((_READ_EACH,), user_id, (user_id,))
        return SealedRow(*ran.rows[0]) if ran.rows else None

    return read_row


async def database_ready(pool: Pool) -> bool:
    async with pool.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return True
