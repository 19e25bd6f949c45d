"""SQL for ``zoom_tokens``. Values go in and out sealed (bytes); sealing lives in ``store.py``.

Functions take an open psycopg connection and run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from psycopg import AsyncConnection
from psycopg.rows import class_row

_COLUMNS = (
    "user_id, zoom_user_id, zoom_account_id, scopes, access_token, refresh_token,"
    " access_expires_at, key_id, connected_at, refreshed_at"
)


@dataclass(frozen=True)
class SealedRow:
    user_id: str
    zoom_user_id: str
    zoom_account_id: str
    scopes: list[str]
    access_token: bytes = field(repr=False)
    refresh_token: bytes = field(repr=False)
    access_expires_at: datetime
    key_id: str
    connected_at: datetime
    refreshed_at: datetime | None


@dataclass(frozen=True)
class SealedTokens:
    access_token: bytes = field(repr=False)
    refresh_token: bytes = field(repr=False)
    key_id: str


# One user's row; its columns are ``SealedRow``'s, in order (``SealedRow(*values)``).
READ: Final = f"SELECT {_COLUMNS} FROM zoom_tokens WHERE user_id = %s"
# ``READ`` for many users at once: each row numbered by its user's place in the array (from 1).
READ_EACH: Final = (
    f"SELECT u.n, {_COLUMNS} FROM unnest(%b::text[]) WITH ORDINALITY AS u(user_id, n)"
    " JOIN zoom_tokens USING (user_id)"
)


async def read(conn: AsyncConnection, user_id: str, *, lock: bool = False) -> SealedRow | None:
    query = READ
    if lock:
        query += " FOR UPDATE"
    async with conn.cursor(row_factory=class_row(SealedRow)) as cur:
        await cur.execute(query, (user_id,))
        return await cur.fetchone()


async def upsert(
    conn: AsyncConnection,
    *,
    user_id: str,
    zoom_user_id: str,
    zoom_account_id: str,
    scopes: tuple[str, ...],
    tokens: SealedTokens,
    access_expires_at: datetime,
) -> SealedRow:
    async with conn.cursor(row_factory=class_row(SealedRow)) as cur:
        await cur.execute(
            f"""
            INSERT INTO zoom_tokens (user_id, zoom_user_id, zoom_account_id, scopes,
                access_token, refresh_token, access_expires_at, key_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id) DO UPDATE SET
                zoom_user_id = EXCLUDED.zoom_user_id,
                zoom_account_id = EXCLUDED.zoom_account_id,
                scopes = EXCLUDED.scopes,
                access_token = EXCLUDED.access_token,
                refresh_token = EXCLUDED.refresh_token,
                access_expires_at = EXCLUDED.access_expires_at,
                key_id = EXCLUDED.key_id,
                connected_at = now(),
                refreshed_at = NULL,
                updated_at = now()
            RETURNING {_COLUMNS}
            """,
            (
                user_id,
                zoom_user_id,
                zoom_account_id,
                list(scopes),
                tokens.access_token,
                tokens.refresh_token,
                access_expires_at,
                tokens.key_id,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def store_refreshed(
    conn: AsyncConnection,
    user_id: str,
    tokens: SealedTokens,
    access_expires_at: datetime,
    scopes: tuple[str, ...],
) -> None:
    await conn.execute(
        """
        UPDATE zoom_tokens SET access_token = %s, refresh_token = %s, key_id = %s,
            access_expires_at = %s, scopes = CASE WHEN %s THEN %s ELSE scopes END,
            refreshed_at = now(), updated_at = now()
        WHERE user_id = %s
        """,
        (
            tokens.access_token,
            tokens.refresh_token,
            tokens.key_id,
            access_expires_at,
            bool(scopes),
            list(scopes),
            user_id,
        ),
    )


async def rekey(conn: AsyncConnection, user_id: str, tokens: SealedTokens) -> None:
    await conn.execute(
        "UPDATE zoom_tokens SET access_token = %s, refresh_token = %s, key_id = %s"
        " WHERE user_id = %s",
        (tokens.access_token, tokens.refresh_token, tokens.key_id, user_id),
    )


async def delete(conn: AsyncConnection, user_id: str) -> SealedRow | None:
    async with conn.cursor(row_factory=class_row(SealedRow)) as cur:
        await cur.execute(
            f"DELETE FROM zoom_tokens WHERE user_id = %s RETURNING {_COLUMNS}",
            (user_id,),
        )
        return await cur.fetchone()


async def delete_zoom_user(conn: AsyncConnection, zoom_user_id: str) -> int:
    cur = await conn.execute("DELETE FROM zoom_tokens WHERE zoom_user_id = %s", (zoom_user_id,))
    return cur.rowcount


async def delete_zoom_user_connected_by(
    conn: AsyncConnection, zoom_user_id: str, at: datetime
) -> tuple[int, int]:
    """Delete the connections to ``zoom_user_id`` made at or before ``at``; returns (deleted,
    kept), kept being those to that Zoom user connected after ``at``."""
    cur = await conn.execute(
        """
        WITH gone AS (
            DELETE FROM zoom_tokens WHERE zoom_user_id = %s AND connected_at <= %s
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone),
               (SELECT count(*) FROM zoom_tokens WHERE zoom_user_id = %s AND connected_at > %s)
        """,
        (zoom_user_id, at, zoom_user_id, at),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def not_under_key(
    conn: AsyncConnection, active_kid: str, after_user_id: str, limit: int
) -> list[SealedRow]:
    """Rows sealed under another key, in user id order after ``after_user_id``, locked."""
    async with conn.cursor(row_factory=class_row(SealedRow)) as cur:
        await cur.execute(
            f"""
            SELECT {_COLUMNS} FROM zoom_tokens
            WHERE key_id <> %s AND user_id > %s
            ORDER BY user_id LIMIT %s FOR UPDATE
            """,
            (active_kid, after_user_id, limit),
        )
        return await cur.fetchall()


# A seed of our own for hashtextextended, apart from the worker's advisory locks (7, 8).
_ZOOM_USER_SEED = 16


async def lock_zoom_user(conn: AsyncConnection, zoom_user_id: str) -> None:
    """Hold, until the caller's transaction ends, the lock that serialises deciding whether a
    Zoom user's grant may be revoked (see ``connected``). Take it after the caller's row lock
    (``read(..., lock=True)``), never before: one order everywhere, no deadlock."""
    await conn.execute(
        f"SELECT pg_advisory_xact_lock(hashtextextended(%s, {_ZOOM_USER_SEED}))", (zoom_user_id,)
    )


async def connected(conn: AsyncConnection, zoom_user_id: str) -> bool:
    """Whether any Talivo user still holds a connection to ``zoom_user_id``."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM zoom_tokens WHERE zoom_user_id = %s)", (zoom_user_id,)
    )
    row = await cur.fetchone()
    return bool(row and row[0])
