"""The link store: what the worker knows about each calendar event and its Zoom meeting.

Contract of ``LinkStore.guard``: it yields a ``LinkSession`` holding exclusive rights to one
event id across every worker process (a lease, ``worker/leases.py``, renewed while the
guard lasts). It may block while another holder works on the same event, holding no database
connection meanwhile; each operation is one statement, sent with other messages' statements of
the same kind in one round trip on a pooled connection (``worker/statement_batches.py``), so a
guard costs no connection while it waits for Zoom. A crashed worker's leases run out by themselves
(``LEASE_SECONDS``). When the guard ends, whichever way (the body raised, the task was
cancelled, even while waiting for the lease), every lease it took is released. Every write
checks the lease in its own statement and raises ``LeaseLost`` when it ran out (the worker
stalled that long): nothing is then written. ``save`` commits at once (autocommit): a write is
durable before the caller goes on to the next side effect. ``conclude`` stores a message's
outcome: the link and the event's pending retry (``worker/pipeline/pending.py``: replaced, or
cleared) in one statement, so a retry never outlives a newer revision's outcome.

A Zoom meeting belongs to at most one event: two links never name the same meeting (a unique
index, migration 0005); ``save`` raises ``MeetingTaken`` instead. ``hold_creates`` serialises,
per host, making meetings and looking for those crashed creates made (see
``worker.handlers.base.find_crashed_creates``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal, Protocol

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from worker.leases import FENCE, LeaseLost, Leases, LeaseSettings, autocommit, event_key, host_key
from worker.pipeline.pending import Answer, PendingRetry, ScheduledRetry
from worker.statement_batches import Statement, Together

LinkState = Literal["none", "creating", "linked", "cancelled", "deleted"]


@dataclass(frozen=True)
class Link:
    """One event's row. ``organizer_user_id`` is the organizer of the message that first stored it.

    ``host_user_id`` is the Talivo user whose Zoom token made ``zoom_meeting_id`` (in state
    ``creating``: whose token is making one): the only token that may touch that meeting. None
    for links stored before it existed (migration 0004): read as the organizer of the message at
    hand, as the worker did before. ``replaced_meeting_id`` and ``replaced_host_user_id`` are set
    only beside a handover's intent: the earlier host's meeting, still to cancel with its host's
    token once the new organizer's meeting exists.
    """

    event_id: str
    organizer_user_id: str
    state: LinkState
    seen_revision: int
    zoom_meeting_id: int | None = None
    zoom_host_id: str | None = None
    join_url: str | None = None
    title: str | None = None
    start_time: datetime | None = None
    duration_minutes: int | None = None
    timezone: str | None = None
    agenda_digest: str | None = None
    creating_since: datetime | None = None
    last_message_id: str | None = None
    last_result_topic: str | None = None
    last_result: bytes | None = None
    host_user_id: str | None = None
    replaced_meeting_id: int | None = None
    replaced_host_user_id: str | None = None

    def evolve(self, **changes: object) -> Link:
        """``dataclasses.replace`` without a second ``__init__``: a frozen dataclass's sets each
        of the 19 fields through ``object.__setattr__`` (7 µs, against 1; a message makes
        several). The fields are as valid as the ones they come from and the changes."""
        unknown = changes.keys() - _LINK_FIELDS
        if unknown:
            raise TypeError(f"Link has no field {', '.join(sorted(unknown))}")
        new = object.__new__(Link)
        new.__dict__.update(self.__dict__, **changes)
        return new

    @property
    def answer(self) -> Answer | None:
        """The result last published about this event, if one is stored."""
        if self.last_result is None or self.last_result_topic is None:
            return None
        return Answer(self.last_message_id or "", self.last_result_topic, self.last_result)


_LINK_FIELDS = frozenset(Link.__dataclass_fields__)


class MeetingTaken(Exception):
    """A link was to name a meeting another event's link already names; nothing was stored."""

    def __init__(self, event_id: str, meeting_id: int | None) -> None:
        super().__init__(f"meeting {meeting_id} is already linked to another event")
        self.event_id, self.meeting_id = event_id, meeting_id


class LinkSession(Protocol):
    async def get(self) -> Link | None:
        """The stored link of the guarded event, or None."""

    async def save(self, link: Link) -> None:
        """Insert or replace the guarded event's link; durable when this returns.

        ``MeetingTaken`` (and nothing stored) when ``link.zoom_meeting_id`` is another event's.
        """

    async def pending(self) -> PendingRetry | None:
        """The guarded event's pending retry, or None."""

    async def conclude(self, link: Link, retry: ScheduledRetry | Keep | None) -> None:
        """Store a message's outcome: ``link`` as ``save`` does and, in the same statement, the
        event's pending retry: ``retry`` (replacing any, unclaimed), none, or (``KEEP``) as it
        is. Durable, all or nothing, when this returns."""

    async def unschedule(self, pending: PendingRetry) -> None:
        """Delete ``pending`` if it is still the event's retry: once its outcome, stored with
        ``KEEP``, is published (a crash before that runs the retry again, which republishes)."""

    async def hold_creates(self, hosts: Iterable[str]) -> None:
        """Exclusive rights, across processes and until the guard ends, to make meetings with
        these hosts' tokens and to look among their meetings for crashed creates. Taken in a
        fixed order; take every host a step needs in one call (a later call may deadlock with
        another step, which Postgres breaks by failing one of them). May block meanwhile."""

    async def linked_elsewhere(self, meeting_ids: Collection[int]) -> frozenset[int]:
        """Those of ``meeting_ids`` that another event's link names (as its meeting, or as the
        earlier meeting of a handover under way)."""


class Keep(Enum):
    KEEP = "keep"


KEEP = Keep.KEEP  # ``conclude``: leave the event's pending retry as it is


class LinkStore(Protocol):
    def guard(self, event_id: str) -> AbstractAsyncContextManager[LinkSession]:
        """Exclusive access to one event's link, across processes; may block on another holder."""


_COLUMNS = tuple(Link.__dataclass_fields__)
_PENDING = tuple(PendingRetry.__dataclass_fields__)

# A guard's owner name, unique across processes and time: this process's random prefix and a
# counter (a uuid4 per guard read the kernel's random source each time).
_OWNERS = map(f"{uuid.uuid4().hex}-{{:x}}".format, itertools.count())

_UNIQUE_MEETING = "event_links_zoom_meeting_id"  # migrations/sql/0005_one_event_per_meeting.sql

# The first read (the link and any pending retry), made right after the lease is taken.
_LOAD = Together(  # for each caller (event_id): its link and pending retry, or NULLs
    f"SELECT c.n, {', '.join('l.' + c for c in _COLUMNS)}, {', '.join('r.' + c for c in _PENDING)} "
    "FROM unnest(%b::text[]) WITH ORDINALITY AS c(event_id, n) "
    "LEFT JOIN event_links l ON l.event_id = c.event_id "
    "LEFT JOIN retry_schedule r ON r.event_id = c.event_id"
)
_SELECT_PENDING = f"SELECT {', '.join(_PENDING)} FROM retry_schedule WHERE event_id = %s"
_SOURCE = (
    "source_topic",
    "source_partition",
    "source_offset",
    "source_key",
    "source_value",
    "header_names",
    "header_values",
    "source_timestamp_ms",
)
# Column types (migrations 0002, 0004, 0006): a fenced write inserts ``SELECT ... FROM fence``,
# where Postgres cannot take a parameter's type from its column as it does in ``VALUES``.
_LINK_TYPES = {
    "seen_revision": "bigint",
    "zoom_meeting_id": "bigint",
    "start_time": "timestamptz",
    "duration_minutes": "integer",
    "creating_since": "timestamptz",
    "last_result": "bytea",
    "replaced_meeting_id": "bigint",
}
_RETRY_TYPES = {
    "revision": "bigint",
    "attempt": "integer",
    "first_failed_at": "timestamptz",
    "due_at": "timestamptz",
    "notice": "bytea",
    "source_partition": "integer",
    "source_offset": "bigint",
    "source_key": "bytea",
    "source_value": "bytea",
    "header_names": "text[]",
    "header_values": "bytea[]",
    "source_timestamp_ms": "bigint",
}


def _typed(columns: tuple[str, ...], types: dict[str, str]) -> str:
    return ", ".join(f"%s::{types.get(c, 'text')}" for c in columns)


_REPLACE_LINK = (
    "ON CONFLICT (event_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "event_id")
    + ", updated_at = now()"
)
_UPSERT_LINK = (
    f"INSERT INTO event_links ({', '.join(_COLUMNS)}, updated_at) "
    f"SELECT {_typed(_COLUMNS, _LINK_TYPES)}, now() FROM fence {_REPLACE_LINK}"
)
_SCHEDULE = (
    f"scheduled AS (INSERT INTO retry_schedule ({', '.join(_PENDING + _SOURCE)}) "
    f"SELECT {_typed(_PENDING + _SOURCE, _RETRY_TYPES)} FROM fence "
    "ON CONFLICT (event_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _PENDING + _SOURCE if c != "event_id")
    + ", claimed_by = NULL, claimed_until = NULL, updated_at = now())"
)


def _stored_together(*, unschedule: bool) -> Together:
    """The fenced link upsert (and, with ``unschedule``, the pending retry's deletion) for every
    caller of a batch, each caller's parameters (seconds, key, owner, *the link's columns) a row
    of ``c``: each lease is renewed and checked, and only links whose lease held are stored."""
    arrays = ", ".join(
        f"%b::{t}[]"
        for t in ("float8", "text", "text", *(_LINK_TYPES.get(c, "text") for c in _COLUMNS))
    )
    names = ", ".join(("seconds", "key", "owner", *_COLUMNS))
    unscheduled = (
        " unscheduled AS (DELETE FROM retry_schedule r USING c JOIN fence USING (n)"
        " WHERE r.event_id = c.event_id),"
        if unschedule
        else ""
    )
    return Together(
        f"WITH c AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS c({names}, n)),"
        # Locked first, in key order, as every batch locks lease rows: a join would lock them
        # in the order its plan reads them, and deadlock with a take batch.
        " held AS (SELECT l.key, c.n, c.seconds FROM leases l JOIN c USING (key, owner)"
        " WHERE l.until > now() ORDER BY l.key FOR UPDATE OF l),"
        " fence AS (UPDATE leases SET until = now() + make_interval(secs => held.seconds)"
        f" FROM held WHERE leases.key = held.key RETURNING held.n),{unscheduled}"
        f" stored AS (INSERT INTO event_links ({', '.join(_COLUMNS)}, updated_at)"
        f" SELECT {', '.join('c.' + col for col in _COLUMNS)}, now()"
        " FROM c JOIN fence USING (n) ORDER BY c.event_id"
        f" {_REPLACE_LINK} RETURNING event_id)"
        # Through ``fence``: a caller whose lease ran out stored nothing, even when another
        # caller of the batch (its event's next owner) stored that event's link.
        " SELECT c.n FROM c JOIN fence USING (n) JOIN stored USING (event_id)"
    )


_SAVE = _stored_together(unschedule=False)
_CONCLUDE = _stored_together(unschedule=True)  # and no retry pending any more


def schedule_params(retry: ScheduledRetry) -> tuple[object, ...]:
    record = retry.record
    return (
        *(getattr(retry.pending, c) for c in _PENDING),
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        [name for name, _ in record.headers],
        [value for _, value in record.headers],
        record.timestamp_ms,
    )


class PostgresLinkStore:
    def __init__(
        self, pool: AsyncConnectionPool[AsyncConnection], leases: LeaseSettings | None = None
    ) -> None:
        self._pool = pool
        self._leases = Leases(pool, leases)

    async def settle(self) -> None:
        """Wait for the lease releases under way (at shutdown, before the pool closes)."""
        await self._leases.settle()

    @asynccontextmanager
    async def guard(self, event_id: str) -> AsyncIterator[LinkSession]:
        owner = next(_OWNERS)
        # Not taken (the database failed, the task was cancelled): nothing to give back, and
        # should the statement have landed all the same, the lease runs out by itself.
        rows = await self._leases.take(event_key(event_id), owner, then=_LOAD, params=(event_id,))
        try:
            (row,) = rows
            link_row, pending_row = row[: len(_COLUMNS)], row[len(_COLUMNS) :]
            first = Link(*link_row) if link_row[0] is not None else None
            pending = PendingRetry(*pending_row) if pending_row[0] is not None else None
            async with self._leases.keep_alive(owner):
                yield _PostgresSession(self._pool, self._leases, owner, event_id, first, pending)
        finally:
            self._leases.release(owner)


def _link_params(link: Link) -> tuple[object, ...]:
    return tuple(getattr(link, c) for c in _COLUMNS)


class _PostgresSession:
    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection],
        leases: Leases,
        owner: str,
        event_id: str,
        first: Link | None,
        pending: PendingRetry | None,
    ) -> None:
        self._pool = pool
        self._leases = leases
        self._owner = owner
        self._event_id = event_id
        self._first: Link | None = first
        self._fresh = True  # ``first`` was read under the lease and nothing was saved since
        self._pending = pending
        self._pending_fresh = True  # likewise for ``pending``
        self._hosts: set[str] = set()  # hosts whose creates this session holds

    async def get(self) -> Link | None:
        if self._fresh:
            self._fresh = False
            return self._first
        async with self._pool.connection() as conn, conn.cursor(row_factory=class_row(Link)) as cur:
            await cur.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM event_links WHERE event_id = %s",
                (self._event_id,),
            )
            return await cur.fetchone()

    async def pending(self) -> PendingRetry | None:
        if self._pending_fresh:
            return self._pending
        async with (
            self._pool.connection() as conn,
            conn.cursor(row_factory=class_row(PendingRetry)) as cur,
        ):
            await cur.execute(_SELECT_PENDING, (self._event_id,))
            return await cur.fetchone()

    async def save(self, link: Link) -> None:
        await self._store(_SAVE, _link_params(link), link)

    async def conclude(self, link: Link, retry: ScheduledRetry | Keep | None) -> None:
        self._pending_fresh = False
        if retry is KEEP:
            await self.save(link)
            return
        if retry is None:
            await self._store(_CONCLUDE, _link_params(link), link)
            return
        # A retry's headers are arrays of arrays of their own lengths, which no array of rows
        # (``unnest``) holds: a statement of its own per caller.
        assert retry.pending.event_id == self._event_id
        sql = f"WITH {FENCE}, {_SCHEDULE} {_UPSERT_LINK}"
        await self._store(sql, (*schedule_params(retry), *_link_params(link)), link)

    async def unschedule(self, pending: PendingRetry) -> None:
        self._pending_fresh = False
        async with autocommit(self._pool) as conn:
            await conn.execute(
                "DELETE FROM retry_schedule"
                " WHERE event_id = %s AND message_id = %s AND attempt = %s",
                (pending.event_id, pending.message_id, pending.attempt),
            )

    async def _store(self, sql: Statement, params: tuple[object, ...], link: Link) -> None:
        assert link.event_id == self._event_id
        self._fresh = False
        key = event_key(self._event_id)
        fence = (self._leases.settings.seconds, key, self._owner)
        try:
            (ran,) = await self._leases.batches.run((sql,), key, (*fence, *params))
        except UniqueViolation as exc:
            if exc.diag.constraint_name == _UNIQUE_MEETING:
                raise MeetingTaken(link.event_id, link.zoom_meeting_id) from exc
            raise
        if ran.rowcount != 1:
            raise LeaseLost(f"the lease on event {self._event_id!r} ran out; nothing stored")

    async def hold_creates(self, hosts: Iterable[str]) -> None:
        # Sorted: two steps that each need the same two hosts take them in the same order.
        for host in sorted(set(hosts) - self._hosts):
            await self._leases.take(host_key(host), self._owner)
            self._hosts.add(host)

    async def linked_elsewhere(self, meeting_ids: Collection[int]) -> frozenset[int]:
        if not meeting_ids:
            return frozenset()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT zoom_meeting_id FROM event_links"
                " WHERE zoom_meeting_id = ANY(%(ids)s::bigint[]) AND event_id <> %(event)s"
                " UNION SELECT replaced_meeting_id FROM event_links"
                " WHERE replaced_meeting_id = ANY(%(ids)s::bigint[]) AND event_id <> %(event)s",
                {"ids": list(meeting_ids), "event": self._event_id},
            )
            return frozenset(row[0] for row in await cursor.fetchall())
