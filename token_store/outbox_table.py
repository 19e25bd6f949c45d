"""SQL for ``zoom_revoke_outbox`` (migration 0008). Tokens go in and out sealed (bytes).

Functions take an open psycopg connection and run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

RevokeReason = Literal["disconnect", "replaced", "unstored", "refused"]
# disconnect: the user disconnected; replaced: they connected another Zoom user;
# unstored: exchanged at connect but not stored (database error); refused: exchanged at connect
# and refused by us (missing permissions, deactivated Zoom user, Zoom failing at /users/me).

_COLUMNS = "id, user_id, zoom_user_id, reason, refresh_token, key_id, attempts"


@dataclass(frozen=True)
class OwedRow:
    id: int
    user_id: str
    zoom_user_id: str | None
    reason: str
    refresh_token: bytes = field(repr=False)
    key_id: str
    attempts: int


async def insert(
    conn: AsyncConnection,
    *,
    user_id: str,
    zoom_user_id: str | None,
    reason: RevokeReason,
    refresh_token: bytes,
    key_id: str,
    attempts: int,
    next_attempt_at: datetime,
    last_error: str | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO zoom_revoke_outbox (user_id, zoom_user_id, reason, refresh_token, key_id,"
        " attempts, last_error, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            user_id,
            zoom_user_id,
            reason,
            refresh_token,
            key_id,
            attempts,
            last_error,
            next_attempt_at,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def claim_due(
    conn: AsyncConnection, now: datetime, until: datetime, limit: int
) -> list[OwedRow]:
    """Rows due at ``now``, oldest first, skipping rows another transaction holds, moved to
    ``until`` (the claim lease) so no other pass takes them once this transaction commits."""
    async with conn.cursor(row_factory=class_row(OwedRow)) as cur:
        await cur.execute(
            f"""
            UPDATE zoom_revoke_outbox SET next_attempt_at = %s
            WHERE id IN (
                SELECT id FROM zoom_revoke_outbox WHERE next_attempt_at <= %s
                ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING {_COLUMNS}
            """,
            (until, now, limit),
        )
        return await cur.fetchall()


async def delete(conn: AsyncConnection, owed_id: int) -> None:
    await conn.execute("DELETE FROM zoom_revoke_outbox WHERE id = %s", (owed_id,))


async def retry_at(
    conn: AsyncConnection, owed_id: int, attempts: int, due: datetime, error: str
) -> None:
    await conn.execute(
        "UPDATE zoom_revoke_outbox SET attempts = %s, next_attempt_at = %s, last_error = %s"
        " WHERE id = %s",
        (attempts, due, error, owed_id),
    )


async def pending(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM zoom_revoke_outbox")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def not_under_key(
    conn: AsyncConnection, active_kid: str, after_id: int, limit: int
) -> list[OwedRow]:
    """Rows sealed under another key, in id order after ``after_id``, locked."""
    async with conn.cursor(row_factory=class_row(OwedRow)) as cur:
        await cur.execute(
            f"""
            SELECT {_COLUMNS} FROM zoom_revoke_outbox WHERE key_id <> %s AND id > %s
            ORDER BY id LIMIT %s FOR UPDATE
            """,
            (active_kid, after_id, limit),
        )
        return await cur.fetchall()


async def rekey(conn: AsyncConnection, owed_id: int, refresh_token: bytes, key_id: str) -> None:
    await conn.execute(
        "UPDATE zoom_revoke_outbox SET refresh_token = %s, key_id = %s WHERE id = %s",
        (refresh_token, key_id, owed_id),
    )
