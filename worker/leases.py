"""Leases: exclusive rights across processes that hold no database connection meanwhile.

A lease is a row of ``leases`` (migration 0010): a key (``event:<id>``, ``host:<user>``), its
owner (a random id per guard) and when it runs out. ``Leases.take`` inserts it, or takes it
over once it has run out, and waits while another owner holds it (no connection held): behind
this process's other takers of the key in turn, then polling the database, backing off from
20 ms to 200 ms, while another process holds it; ``keep_alive`` renews every lease of an owner
each third of ``seconds`` until its block ends (one loop and one statement for all owners);
``release`` deletes them. Writes made under a lease check it in the same statement
(``FENCE``): a guard whose lease ran out (a process stalled longer than ``seconds``) is refused
with ``LeaseLost`` rather than overwriting the next owner's work.

Why not advisory locks: a session advisory lock lives on one connection, which the worker then
held across every Zoom call of the message, one connection per message in flight; and a
transaction-mode PgBouncer hands each statement to any server connection, so session locks do
not work behind it at all. The cost: a worker that dies leaves its leases to run out
(``seconds``, 30 by default) instead of releasing them with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection, OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from structlog.stdlib import get_logger

from worker.statement_batches import Statement, StatementBatcher, Together

log = get_logger("worker.leases")

Pool = AsyncConnectionPool[AsyncConnection]


class LeaseLost(Exception):
    """A write under a lease found it gone: it ran out and may be someone else's now."""


class LeaseTimeout(Exception):
    """A lease stayed another owner's for longer than the taker would wait."""


@dataclass(frozen=True)
class LeaseSettings:
    seconds: float = 30.0
    first_wait_seconds: float = 0.02
    max_wait_seconds: float = 0.2
    give_up_seconds: float = 600.0


# For each caller (key, owner, seconds): its number when the lease is now its owner's. Rows are
# written in key order, as every batch locks lease rows (two batches never deadlock over them).
TAKE: Final = Together(
    "WITH c AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::float8[])"
    " WITH ORDINALITY AS c(key, owner, seconds, n)),"
    " taken AS (INSERT INTO leases (key, owner, until)"
    " SELECT key, owner, now() + make_interval(secs => seconds) FROM c ORDER BY key"
    " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until"
    " WHERE leases.until < now() OR leases.owner = EXCLUDED.owner"
    " RETURNING key, owner)"
    " SELECT c.n FROM c JOIN taken USING (key, owner)"
)
# The check a write makes in its own statement, renewing the lease as it goes: a CTE named
# ``fence`` with one row while the lease is the writer's (params: seconds, key, owner).
FENCE: Final = (
    "fence AS (UPDATE leases SET until = now() + make_interval(secs => %s)"
    " WHERE key = %s AND owner = %s AND until > now() RETURNING 1)"
)
# Every lease of these owners, locked in key order as every batch locks them (no deadlock).
_RENEW: Final = (
    "UPDATE leases SET until = now() + make_interval(secs => %s) WHERE key IN"
    " (SELECT key FROM leases WHERE owner = ANY(%s) ORDER BY key FOR UPDATE)"
)
_RELEASE: Final = "DELETE FROM leases WHERE key = %s AND owner = %s"
# ``_RELEASE`` for each caller (key, owner). Locked first, in key order: ``DELETE ... USING``
# alone locks rows in the order its plan reads them (a small table's: as they lie on disk), and
# would deadlock with a take batch.
_RELEASE_EACH: Final = Together(
    "WITH held AS (SELECT l.key, c.n FROM leases l"
    " JOIN unnest(%b::text[], %b::text[]) WITH ORDINALITY AS c(key, owner, n) USING (key, owner)"
    " ORDER BY l.key FOR UPDATE OF l)"
    " DELETE FROM leases USING held WHERE leases.key = held.key RETURNING held.n"
)
_SETTLE_SECONDS: Final = 10.0


@contextlib.asynccontextmanager
async def autocommit(pool: Pool) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit: each statement durable on its own, no BEGIN or
    COMMIT round trips (the pool hands back connections as they were left)."""
    async with pool.connection() as conn:
        if not conn.autocommit:
            await conn.set_autocommit(True)
        yield conn


def event_key(event_id: str) -> str:
    return f"event:{event_id}"


def host_key(user_id: str) -> str:
    return f"host:{user_id}"


class _Queue:
    """This process's takers of one key, in turn: only the first asks the database."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Leases:
    def __init__(self, pool: Pool, settings: LeaseSettings | None = None) -> None:
        self._pool = pool
        self.settings = settings or LeaseSettings()
        self.batches = StatementBatcher(pool)  # the writes made under leases share it too
        self._queues: dict[str, _Queue] = {}
        self._held: dict[str, list[str]] = {}  # owner -> the keys it holds in this process's turn
        self._taken: dict[str, list[str]] = {}  # owner -> every key it took through this object
        self._background: set[asyncio.Task[None]] = set()
        self._alive: dict[str, None] = {}  # owners whose leases are renewed, in order
        self._renewer: asyncio.Task[None] | None = None

    async def take(
        self,
        key: str,
        owner: str,
        *,
        then: Statement | None = None,
        params: tuple[object, ...] = (),
    ) -> list[tuple[Any, ...]]:
        """Take ``key`` for ``owner``, waiting while another holds it; with ``then``, run that
        query right after in the same round trip (one batch, ``worker/statement_batches.py``;
        its own snapshot: it sees every write the previous owner made) and return its rows.
        ``LeaseTimeout`` past ``give_up_seconds``. May be cancelled: then the lease may be
        taken, and is given back behind the caller's back.

        Takers of one key in this process queue here first (first come, first served, handed
        on at ``release`` without a round trip), so only one of them asks the database, and
        only while another process holds the key."""
        queue = self._queues.setdefault(key, _Queue())
        queue.users += 1
        # Wait for this process's holder to hand the key on, for as long as a lease lasts:
        # a holder here renews its lease, so asking the database meanwhile would only poll
        # (a host's creates queued behind a rate-limited one polled 100 times a second). Past
        # that, ask anyway: the lease alone decides, so a turn never handed on (a bug) delays
        # the key's takers by one lease's time, not for good.
        queued = False
        try:
            if queue.lock.locked():
                async with asyncio.timeout(self.settings.seconds):
                    await queue.lock.acquire()
            else:  # nobody here holds it (the usual case): no timer to set up
                await queue.lock.acquire()
            queued = True
        except TimeoutError:
            pass
        except BaseException:
            self._leave(key, queue)
            raise
        try:
            rows = await self._take(key, owner, then, params)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                # The statement may have landed before the cancellation: give it back
                # behind our back, or the next taker waits for it to run out.
                self._later(self._delete_key(key, owner))
            if queued:
                queue.lock.release()
            self._leave(key, queue)
            raise
        self._taken.setdefault(owner, []).append(key)
        if not queued:
            self._leave(key, queue)
            return rows
        self._held.setdefault(owner, []).append(key)
        return rows

    async def _take(
        self, key: str, owner: str, then: Statement | None, params: tuple[object, ...]
    ) -> list[tuple[Any, ...]]:
        wait = self.settings.first_wait_seconds
        deadline = time.monotonic() + self.settings.give_up_seconds
        taking = (key, owner, self.settings.seconds)
        kind = (TAKE,) if then is None else (TAKE, then)
        while True:
            try:
                ran = await self.batches.run(
                    kind, key, taking, *(() if then is None else (params,))
                )
            except (OperationalError, PoolTimeout):
                raise  # the database is out of reach: should it have landed, it runs out
            except Exception:
                # The read failed (a value Python cannot hold, say) after the lease was taken:
                # give it back, or the next attempt waits for it to run out.
                self._later(self._delete_key(key, owner))
                raise
            taken = ran[0].rows
            rows = ran[1].rows if then is not None else []
            if taken:
                return rows
            if time.monotonic() + wait > deadline:
                raise LeaseTimeout(
                    f"{key} held by another owner for {self.settings.give_up_seconds:.0f}s"
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.settings.max_wait_seconds)

    def _leave(self, key: str, queue: _Queue) -> None:
        queue.users -= 1
        if queue.users == 0 and self._queues.get(key) is queue:
            del self._queues[key]

    @contextlib.asynccontextmanager
    async def keep_alive(self, owner: str) -> AsyncIterator[None]:
        """Renew ``owner``'s leases every third of their lifetime for the block's duration.

        One renewal loop serves every owner of this object, one statement for all of them each
        time: a task per owner cost each message a task, a timer and a cancellation. It stops
        when the last owner's block ends, and the next block starts it again."""
        self._alive[owner] = None
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_alive(), name="lease-renewal")
        try:
            yield
        finally:
            del self._alive[owner]
            if not self._alive and self._renewer is not None:
                renewer, self._renewer = self._renewer, None
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer

    def release(self, owner: str) -> None:
        """Delete every lease of ``owner``, then hand its keys to the next local taker: in the
        background, so the caller goes on at once (an outage delays only the next taker of the
        same keys, never this caller). A failure is logged: the leases run out by themselves.
        ``settle`` waits for every release under way (before the pool closes)."""
        self._later(self._delete(owner))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(self._quietly(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            log.warning("lease_not_released", error=type(exc).__name__)

    async def settle(self) -> None:
        """Wait (at most ten seconds) for the releases under way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SETTLE_SECONDS
        if self._background:
            await asyncio.wait(set(self._background), timeout=_SETTLE_SECONDS)
        await self.batches.settle(max(0.0, deadline - loop.time()))

    def _hand_on(self, owner: str) -> None:
        for key in self._held.pop(owner, ()):
            queue = self._queues[key]
            queue.lock.release()
            self._leave(key, queue)

    async def _delete_key(self, key: str, owner: str) -> None:
        async with autocommit(self._pool) as conn:
            await conn.execute(_RELEASE, (key, owner))

    async def sweep(self) -> int:
        """Delete leases that ran out long ago (their holders died): how many. Nothing waits
        on them (an expired lease is taken over in place); this only keeps the table small."""
        async with autocommit(self._pool) as conn:
            cursor = await conn.execute(
                "DELETE FROM leases WHERE until < now() - make_interval(secs => %s)",
                (self.settings.seconds * 10,),
            )
            return cursor.rowcount

    async def sweeping(self, stop: asyncio.Event, every: float = 600.0) -> None:
        """``sweep`` every ``every`` seconds until ``stop``; failures are logged and retried."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                swept = await self.sweep()
            except Exception as exc:
                log.warning("leases_not_swept", error=type(exc).__name__)
                continue
            if swept:
                log.info("leases_swept", count=swept)

    async def _delete(self, owner: str) -> None:
        try:
            # One statement per key, each ordered by its key: every batch locks lease rows in
            # key order, so releases never deadlock with takes (``DELETE ... WHERE owner``
            # locked an owner's rows in whatever order they lay on disk).
            keys = self._taken.pop(owner, [])
            done = await asyncio.gather(
                *(self.batches.run((_RELEASE_EACH,), key, (key, owner)) for key in keys),
                return_exceptions=True,
            )
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            self._hand_on(owner)

    async def _renew_alive(self) -> None:
        # Its own check as well as the cancellation: a cancellation can be lost on the way (see
        # ``worker/pool_cancellation.py``), and a loop that ran on beside its successor, or
        # with no one to renew, would only cost statements.
        me = asyncio.current_task()
        while self._renewer is me:
            await asyncio.sleep(self.settings.seconds / 3)
            owners = list(self._alive)
            if self._renewer is not me or not owners:
                return
            try:
                async with autocommit(self._pool) as conn:
                    await conn.execute(_RENEW, (self.settings.seconds, owners))
            except Exception as exc:  # the next write's fence tells whether it still holds
                log.warning("lease_not_renewed", error=type(exc).__name__)
