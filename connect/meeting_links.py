"""The links, as the connect side reads and changes them: ``event_links`` (the worker's table),
its host's connection in ``zoom_tokens``, and ``zoom_meeting_changes`` (migration 0009).

Contract of ``MeetingLinks.locked(meeting_id)``: it holds the worker's own right to act on the
event whose link names the meeting, the event's lease (``worker.leases``: key
``event:<event_id>`` in ``leases``, migration 0010), for the block. While
it is held no worker touches that event or its meeting on Zoom, and every write the worker made
before letting go of it is visible. It yields ``None`` when no link names the meeting; the link
is read once the lease is held and must still name the meeting (the worker may have replaced or
unlinked it meanwhile), else ``None`` too. The lease is waited for at most
``lock_wait_seconds`` (the worker may hold it through a Zoom call), then ``LinkBusy``. It is
released when the block ends, whichever way it ends; a process that dies holding it leaves it
to run out after ``lease_seconds``.

``LockedLink.store`` writes what ``decide`` asked for and records the published change in one
transaction that first renews the lease and checks it is still ours (``LeaseLost`` and nothing
written otherwise). Only the fields named are written: the worker's own columns, its stored
result and revisions, are left as they are, and so is ``updated_at``, which thus stays the
time of the worker's last write (``decide`` compares Zoom's changes with it); when a host
change last set each field is read from ``zoom_meeting_changes``.

The SQL here reads and writes the worker's tables directly: the connect side never imports the
pipeline (an import-linter contract); the leases are the worker's own module, which knows
nothing of the pipeline.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Final

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from connect.meeting_changes import LinkChange, LinkView, Moved, Unlinked
from schemas import MeetingChanged
from worker.leases import FENCE, LeaseLost, Leases, LeaseSettings, LeaseTimeout, event_key

__all__ = ["KEEP_RECORDS", "LeaseLost", "LinkBusy", "LockedLink", "MeetingLinks"]

KEEP_RECORDS: Final = timedelta(days=1)  # Zoom's last retry comes 85 minutes after the first

_HELD: Final = f"WITH {FENCE} SELECT count(*) FROM fence"  # renews it, if it is still ours

_FIND: Final = "SELECT event_id FROM event_links WHERE zoom_meeting_id = %s"
_READ: Final = (
    "SELECT l.event_id, l.state, l.seen_revision, l.zoom_meeting_id,"
    " coalesce(l.host_user_id, l.organizer_user_id), l.title, l.start_time,"
    " l.duration_minutes, l.timezone, l.updated_at, t.zoom_user_id"
    " FROM event_links l"
    " LEFT JOIN zoom_tokens t ON t.user_id = coalesce(l.host_user_id, l.organizer_user_id)"
    " WHERE l.event_id = %s"
)
_RECORDED: Final = "SELECT 1 FROM zoom_meeting_changes WHERE message_id = %s"
# Per field, when the newest host change stored in the link that changed it happened on Zoom.
_FIELD_TIMES: Final = (
    "SELECT f, max(c.occurred_at) FROM zoom_meeting_changes c, unnest(c.fields) AS f"
    " WHERE c.zoom_meeting_id = %s GROUP BY f"
)
_MOVE: Final = (
    "UPDATE event_links SET title = %s, start_time = %s, duration_minutes = %s,"
    " timezone = %s WHERE event_id = %s"
)
# As the worker's update handler does when it finds the meeting gone (a 3001): no meeting, so
# its decision for the next revision that wants Zoom is to create one.
_UNLINK: Final = (
    "UPDATE event_links SET state = 'none', zoom_meeting_id = NULL, zoom_host_id = NULL,"
    " join_url = NULL, creating_since = NULL WHERE event_id = %s"
)
_PURGE: Final = "DELETE FROM zoom_meeting_changes WHERE published_at < now() - %s"
_RECORD: Final = (
    "INSERT INTO zoom_meeting_changes"
    " (message_id, zoom_meeting_id, event_id, change, occurred_at, fields)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING"
)

Pool = AsyncConnectionPool[AsyncConnection]


class LinkBusy(Exception):
    """The event's lease stayed another's (the worker's) longer than the wait allowed."""


class LockedLink:
    """One event's link, read under its lease (``MeetingLinks.locked``)."""

    def __init__(self, pool: Pool, link: LinkView, owner: str, lease_seconds: float) -> None:
        self._pool = pool
        self._owner = owner
        self._lease_seconds = lease_seconds
        self.link = link

    async def recorded(self, message_id: str) -> bool:
        """Whether a ``meeting.changed`` with this id was published (and recorded) before."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_RECORDED, (message_id,))
            return await cursor.fetchone() is not None

    async def store(self, change: LinkChange | None, published: MeetingChanged) -> None:
        """Apply ``change`` to the link and record ``published``, in one transaction, if the
        lease is still ours (``LeaseLost`` otherwise)."""
        event_id = self.link.event_id
        async with self._pool.connection() as conn, conn.transaction():
            fence = (self._lease_seconds, event_key(event_id), self._owner)
            held = await (await conn.execute(_HELD, fence)).fetchone()
            if held is None or held[0] != 1:
                raise LeaseLost(f"the lease on event {event_id!r} ran out; nothing stored")
            match change:
                case Moved():
                    await conn.execute(
                        _MOVE,
                        (change.title, change.start_time, change.duration_minutes,
                         change.timezone, event_id),
                    )  # fmt: skip
                case Unlinked():
                    await conn.execute(_UNLINK, (event_id,))
                case None:
                    pass
            await _record(conn, published)


async def _record(conn: AsyncConnection, published: MeetingChanged) -> None:
    """Remember a published change (and forget those past any retry of Zoom's)."""
    await conn.execute(_PURGE, (KEEP_RECORDS,))
    await conn.execute(
        _RECORD,
        (published.message_id, published.meeting.id, published.event_id,
         published.change.value, published.occurred_at, list(published.changed or ())),
    )  # fmt: skip


class MeetingLinks:
    def __init__(
        self, pool: Pool, *, lock_wait_seconds: float = 1.0, lease_seconds: float = 10.0
    ) -> None:
        self._pool = pool
        self._lease_seconds = lease_seconds
        self._leases = Leases(
            pool, LeaseSettings(seconds=lease_seconds, give_up_seconds=lock_wait_seconds)
        )

    @asynccontextmanager
    async def locked(self, meeting_id: int) -> AsyncIterator[LockedLink | None]:
        async with self._pool.connection() as conn:
            found = await (await conn.execute(_FIND, (meeting_id,))).fetchone()
        if found is None:
            yield None
            return
        event_id: str = found[0]
        owner = uuid.uuid4().hex
        try:
            try:  # the link is read in the same round trip, once the lease is ours
                rows = await self._leases.take(
                    event_key(event_id), owner, then=_READ, params=(event_id,)
                )
            except LeaseTimeout:
                raise LinkBusy(event_id) from None
            async with self._pool.connection() as conn:
                times = await (await conn.execute(_FIELD_TIMES, (meeting_id,))).fetchall()
            link = _view(rows[0], dict(times)) if rows else None
            if link is None or link.zoom_meeting_id != meeting_id:
                yield None
            else:
                yield LockedLink(self._pool, link, owner, self._lease_seconds)
        finally:
            self._leases.release(owner)

    async def record(self, published: MeetingChanged) -> None:
        """Record a published change alone (its link no longer names the meeting)."""
        async with self._pool.connection() as conn, conn.transaction():
            await _record(conn, published)


def _view(row: tuple[object, ...], field_times: dict[str, datetime]) -> LinkView:
    (event_id, state, seen_revision, zoom_meeting_id, host, title, start_time, duration,
     timezone, updated_at, zoom_user_id) = row  # fmt: skip
    assert isinstance(event_id, str) and isinstance(state, str) and isinstance(host, str)
    assert isinstance(seen_revision, int) and isinstance(updated_at, datetime)
    return LinkView(
        event_id=event_id,
        state=state,
        seen_revision=seen_revision,
        zoom_meeting_id=zoom_meeting_id if isinstance(zoom_meeting_id, int) else None,
        host_user_id=host,
        title=title if isinstance(title, str) else None,
        start_time=start_time if isinstance(start_time, datetime) else None,
        duration_minutes=duration if isinstance(duration, int) else None,
        timezone=timezone if isinstance(timezone, str) else None,
        updated_at=updated_at,
        connected_zoom_user_id=zoom_user_id if isinstance(zoom_user_id, str) else None,
        zoom_field_times=field_times,
    )
