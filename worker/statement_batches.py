"""Statement batches: concurrent callers' statements of one kind, sent in one round trip.

At full load a worker has a hundred messages in flight, each making the same few statements
(take a lease and read the event's link, store the link, take a rate-limit slot, give the
lease back). Sent one at a time each costs a pooled connection's borrow, a round trip and about
150 µs of CPU; sent together with ``executemany`` in pipeline mode, about 30 µs each
(``python -m bench.statements``). Group commit, as databases do it for their log.

Contract of ``StatementBatcher.run(kind, order, params)``: runs ``kind``'s statements (one or
more SQL texts, in order) with ``params`` (one tuple or mapping per statement) and returns
each statement's rows and rowcount. May block on the pool and behind the batch of the same
kind in flight: at most one batch of a kind is in flight, so a statement waits for no one when
none is (no added latency at low load), and those that come meanwhile go together in the next
(a round trip per SQL text of the kind). A batch is one transaction (but see ``Together``
below): durable, all of it, when ``run`` returns; its row locks are held until then, so a batch
runs its statements sorted by ``order`` (the row they lock first, say a lease's key), and two
batches lock rows in the same order. Raises what the statement alone would raise: a batch that
fails (one unique violation, or a parameter psycopg cannot send, aborts it all: rolled back)
runs again one caller at a time, each on its own connection, and a deadlock victim (even a
batch of one: it may hold several rows) again, up to ``DEADLOCK_RETRIES`` times; only a
``PoolTimeout`` fails the whole batch at once, and the statements queued behind it (each waits
for a connection one pool timeout at most, as alone). A caller cancelled before its batch went
is left out of it; one cancelled after is cancelled once the batch is through (its statement
may have taken effect, and whatever the caller does about that comes after it).

A statement per caller costs a send to the socket and psycopg's work for each; a ``Together``
statement is sent once for the whole batch, its callers' parameters as arrays (``unnest``),
for the simple kinds (take a lease, read a link or a token row, give a lease back). Client CPU
per statement (``python -m bench.statements``): 110-140 µs alone; with ``executemany`` 32-42
µs in batches of 64 but 130-210 in batches of 12; together 15-18 and 46-49. A kind made of
``Together`` statements only sends them in one pipeline without a transaction of its own (a
transaction costs psycopg two more round trips' work): should a later one fail, the earlier
ones may stay applied and run again in the reruns, so each must be safe to run twice (a lease
take by its own owner is).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, cast

from psycopg import AsyncConnection, AsyncCursor
from psycopg.errors import DeadlockDetected
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True)
class Together:
    """A statement run once for a whole batch, over its callers' parameters as arrays.

    ``sql`` takes one array per parameter, in the order of a caller's parameter sequence, as
    binary placeholders (``%b::text[]``: psycopg dumps a list five times faster in binary than
    as text), and reads them with ``unnest(...) WITH ORDINALITY``: that ordinal, the caller's
    number from 1, is the first column of every row it returns for that caller. A caller's rows
    are those rows without it, its rowcount their count (so a write returns a row for each row
    it changed). Two callers in one batch may change the same row only where ``sql`` allows it
    (an upsert does not: the batch fails, and each caller runs alone).
    """

    sql: str


Statement: TypeAlias = str | Together
Kind: TypeAlias = tuple[Statement, ...]  # the statements, run in this order for each caller
MAX_BATCH: Final = 64
# A deadlock victim (rolled back, nothing of it stays) runs again alone this many times: a
# batch holds several rows' locks at once, so it can deadlock with another batch (or a
# statement locking several rows) where its statements alone never would.
DEADLOCK_RETRIES: Final = 3


@dataclass(frozen=True)
class Ran:
    """One statement's outcome: its rows (empty when it returns none) and rowcount."""

    rows: list[tuple[Any, ...]]
    rowcount: int


@dataclass
class _Call:
    order: str
    params: tuple[Params, ...]
    done: asyncio.Future[list[Ran]]
    sent: asyncio.Future[None] | None = None  # its batch, once taken: done when it is through


@dataclass
class _Queue:
    calls: list[_Call] = field(default_factory=list)
    flying: bool = False


class StatementBatcher:
    def __init__(
        self, pool: AsyncConnectionPool[AsyncConnection], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._pool = pool
        self._max = max_batch
        self._queues: dict[Kind, _Queue] = {}
        self._flights: set[asyncio.Task[None]] = set()
        # The pool's event loop, kept from the first call: asking for it is a getpid system
        # call each time on CPython 3.11 (its fork check): 2 % of the worker's CPU.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0  # batches sent, for tests and curiosity

    async def run(self, kind: Kind, order: str, *params: Params) -> list[Ran]:
        """Run ``kind`` with ``params`` (one per SQL text) in the next batch; see the module."""
        assert len(params) == len(kind), "one parameter set per statement"
        if self._loop is None or self._loop.is_closed():  # closed: the pool moved on (tests)
            self._loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Ran]] = self._loop.create_future()
        call = _Call(order, params, done)
        queue = self._queues.setdefault(kind, _Queue())
        queue.calls.append(call)
        if not queue.flying:
            self._fly(kind, queue)
        try:
            return await done
        except asyncio.CancelledError:
            if call.sent is not None and not call.sent.done():
                # Its statement is on its way: the cancellation goes on once the batch is
                # through, so that what the caller does about it (give a lease back, say)
                # comes after the statement, never before it.
                await asyncio.wait({call.sent})
            raise

    def _fly(self, kind: Kind, queue: _Queue) -> None:
        assert self._loop is not None, "run() keeps the loop first"
        task = self._loop.create_task(self._flight(kind, queue))
        queue.flying = True
        self._flights.add(task)
        task.add_done_callback(self._flights.discard)

    async def _flight(self, kind: Kind, queue: _Queue) -> None:
        # Started a loop turn after the first call: whatever came in that turn goes along.
        batch: list[_Call] = []
        loop = asyncio.get_running_loop()
        try:
            while queue.calls:
                batch = [c for c in queue.calls[: self._max] if not c.done.done()]
                del queue.calls[: self._max]
                if not batch:
                    continue
                sent = loop.create_future()
                for call in batch:
                    call.sent = sent
                try:
                    await self._send(kind, queue, sorted(batch, key=lambda c: c.order))
                finally:
                    sent.set_result(None)
        except BaseException as exc:  # cancelled (the loop is closing): no caller waits for ever
            for call in (*batch, *queue.calls):
                _settle(call, exc)
            queue.calls.clear()
            raise
        finally:
            queue.flying = False
            if not queue.calls and self._queues.get(kind) is queue:
                del self._queues[kind]

    async def _send(self, kind: Kind, queue: _Queue, batch: list[_Call]) -> None:
        try:
            outcomes = await self._execute(kind, [c.params for c in batch])
        except Exception as exc:
            if isinstance(exc, PoolTimeout) or (
                len(batch) == 1 and not isinstance(exc, DeadlockDetected)
            ):
                for call in batch:
                    _settle(call, exc)
            else:  # rolled back, all of it: each again alone, to fail only its own caller
                await asyncio.gather(*(self._alone(kind, call) for call in batch))
            if any(isinstance(c.done.exception(), PoolTimeout) for c in batch if _failed(c)):
                # No connection for a whole pool timeout (Postgres is out of reach, say):
                # those queued meanwhile would wait for the same pool, a second timeout's
                # time; they fail now, as every one of them would have alone.
                for call in queue.calls:
                    _settle(call, PoolTimeout("no connection: the batch before found none"))
                queue.calls.clear()
            return
        for call, outcome in zip(batch, outcomes, strict=True):
            _settle(call, outcome)

    async def _alone(self, kind: Kind, call: _Call) -> None:
        for retry in range(DEADLOCK_RETRIES, -1, -1):
            if call.done.done():
                return
            try:
                (outcome,) = await self._execute(kind, [call.params])
            except DeadlockDetected as exc:
                if retry:
                    continue
                _settle(call, exc)
            except Exception as exc:
                _settle(call, exc)
            else:
                _settle(call, outcome)
            return

    async def _execute(self, kind: Kind, params: list[tuple[Params, ...]]) -> list[list[Ran]]:
        self.sent += 1
        async with self._pool.connection() as conn:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            cursors = [conn.cursor() for _ in kind]
            try:
                async with contextlib.AsyncExitStack() as scope:
                    if not all(isinstance(statement, Together) for statement in kind):
                        # A transaction of its own, not just the pipeline's implicit one: a
                        # failure in Python (a parameter psycopg cannot send, a row it cannot
                        # read) rolls back the statements already sent too, so a rerun never
                        # applies one twice.
                        await scope.enter_async_context(conn.pipeline())
                        await scope.enter_async_context(conn.transaction())
                    elif len(kind) > 1:  # one round trip, no transaction of ours (see above)
                        await scope.enter_async_context(conn.pipeline())
                    for n, (cursor, statement) in enumerate(zip(cursors, kind, strict=True)):
                        await _send_one(cursor, statement, params, n)
                    per_statement = [
                        await _outcomes(cursor, statement, len(params))
                        for cursor, statement in zip(cursors, kind, strict=True)
                    ]
            finally:
                for cursor in cursors:
                    await cursor.close()
        return [list(call) for call in zip(*per_statement, strict=True)]

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a bound, not a cancel
        """Wait for the batches in flight (before the pool closes), ``timeout`` seconds at most."""
        if self._flights:
            await asyncio.wait(set(self._flights), timeout=timeout)


async def _send_one(
    cursor: AsyncCursor[Any], statement: Statement, params: list[tuple[Params, ...]], n: int
) -> None:
    """Send ``statement`` (the ``n``-th of its kind) for every caller of the batch."""
    if isinstance(statement, Together):
        mine = cast(list[Sequence[Any]], [p[n] for p in params])
        await cursor.execute(statement.sql, [list(column) for column in zip(*mine, strict=True)])
    else:
        await cursor.executemany(statement, [p[n] for p in params], returning=True)


async def _outcomes(cursor: AsyncCursor[Any], statement: Statement, count: int) -> list[Ran]:
    if isinstance(statement, Together):
        rows: list[list[tuple[Any, ...]]] = [[] for _ in range(count)]
        for row in await cursor.fetchall():
            rows[row[0] - 1].append(row[1:])
        return [Ran(r, len(r)) for r in rows]
    out: list[Ran] = []
    for n in range(count):
        if n:
            cursor.nextset()
        rows_of_n = await cursor.fetchall() if cursor.description is not None else []
        out.append(Ran(rows_of_n, cursor.rowcount))
    return out


def _failed(call: _Call) -> bool:
    return call.done.done() and not call.done.cancelled() and call.done.exception() is not None


def _settle(call: _Call, outcome: list[Ran] | BaseException) -> None:
    if call.done.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, asyncio.CancelledError):
        call.done.cancel()
    elif isinstance(outcome, BaseException):
        call.done.set_exception(outcome)
    else:
        call.done.set_result(outcome)
