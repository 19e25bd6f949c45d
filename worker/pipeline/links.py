"""The link store: what the worker knows about each calendar event and its Zoom meeting.

Contract of ``LinkStore.guard``: it yields a ``LinkSession`` holding exclusive rights to one
event id across every worker process (a Postgres advisory lock on a dedicated connection). It
may block while another holder works on the same event; the lock dies with the connection, so a
crashed worker never leaves an event locked. ``save`` commits at once (autocommit): a write is
durable before the caller goes on to the next side effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

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
        return replace(self, **changes)  # type: ignore[arg-type]


class LinkSession(Protocol):
    async def get(self) -> Link | None:
        """The stored link of the guarded event, or None."""

    async def save(self, link: Link) -> None:
        """Insert or replace the guarded event's link; durable when this returns."""


class LinkStore(Protocol):
    def guard(self, event_id: str) -> AbstractAsyncContextManager[LinkSession]:
        """Exclusive access to one event's link, across processes; may block on another holder."""


_COLUMNS = tuple(Link.__dataclass_fields__)


class PostgresLinkStore:
    def __init__(self, pool: AsyncConnectionPool[AsyncConnection]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def guard(self, event_id: str) -> AsyncIterator[LinkSession]:
        async with self._pool.connection() as conn:
            await conn.set_autocommit(True)
            # Lock and first read in one round trip: the read happens once the lock is held.
            cursor = await conn.execute(
                f"SELECT {', '.join('l.' + c for c in _COLUMNS)} FROM "
                "(SELECT pg_advisory_lock(hashtextextended(%s, 7))) AS locked "
                "LEFT JOIN event_links l ON l.event_id = %s",
                (event_id, event_id),
            )
            row = await cursor.fetchone()
            first = Link(*row) if row is not None and row[0] is not None else None
            try:
                yield _PostgresSession(conn, event_id, first)
            finally:
                await conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 7))", (event_id,)
                )


class _PostgresSession:
    def __init__(self, conn: AsyncConnection, event_id: str, first: Link | None) -> None:
        self._conn = conn
        self._event_id = event_id
        self._first: Link | None = first
        self._fresh = True  # ``first`` was read under the lock and nothing was saved since

    async def get(self) -> Link | None:
        if self._fresh:
            self._fresh = False
            return self._first
        async with self._conn.cursor(row_factory=class_row(Link)) as cur:
            await cur.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM event_links WHERE event_id = %s",
                (self._event_id,),
            )
            return await cur.fetchone()

    async def save(self, link: Link) -> None:
        assert link.event_id == self._event_id
        self._fresh = False
        names = ", ".join(_COLUMNS)
        marks = ", ".join(["%s"] * len(_COLUMNS))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "event_id")
        await self._conn.execute(
            f"INSERT INTO event_links ({names}, updated_at) VALUES ({marks}, now()) "
            f"ON CONFLICT (event_id) DO UPDATE SET {updates}, updated_at = now()",
            tuple(getattr(link, c) for c in _COLUMNS),
        )
