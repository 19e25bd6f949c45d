"""Single-use ticket nonces and OAuth states, in Postgres (``migrations/sql/0003``).

Every web replica shares them, so a ticket or a state works exactly once whichever replica
sees it. ``now`` is always passed in (the app's clock), never read here.

- ``use_nonce``: records a ticket's nonce (its JWT ``jti``); a second presentation raises
  ``TicketReplayed``.
- ``begin``: uses the ticket's nonce and stores a fresh state bound to that ticket (user,
  return URL, nonce) with its PKCE verifier, in one transaction.
- ``finish``: marks a state used and returns it; a second call finds it ``used``. Rows are kept
  until they expire so a replayed state still finds its return URL, then purged.

Only SHA-256 of a state is stored, so reading the table does not let anyone finish a flow.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from connect.errors import TicketReplayed
from connect.tickets import Ticket
from token_store.pkce import new_verifier, s256

# Rows are deleted this long after they expire (a replayed state meanwhile still gets its
# return URL and a clear reason).
_KEEP_AFTER_EXPIRY = timedelta(hours=1)


@dataclass(frozen=True)
class Begun:
    """What ``/zoom/connect`` needs to send the browser to Zoom."""

    state: str = field(repr=False)
    code_challenge: str  # S256 of the verifier


@dataclass(frozen=True)
class Pending:
    """A state found by the callback. ``outcome`` says whether it may be used now."""

    user_id: str
    return_url: str
    code_verifier: str = field(repr=False)
    outcome: Literal["fresh", "used", "expired"]


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()


def _ts(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


class StateStore:
    def __init__(self, pool: AsyncConnectionPool, state_ttl: timedelta = timedelta(minutes=10)):
        self._pool = pool
        self._ttl = state_ttl

    async def use_nonce(self, ticket: Ticket, now: datetime) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await self._use_nonce(conn, ticket, now)

    async def begin(self, ticket: Ticket, now: datetime) -> Begun:
        state = secrets.token_urlsafe(32)
        verifier = new_verifier()
        async with self._pool.connection() as conn, conn.transaction():
            await self._use_nonce(conn, ticket, now)
            await conn.execute(
                "INSERT INTO oauth_states (state_sha256, user_id, return_url, ticket_nonce,"
                " code_verifier, expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    _digest(state),
                    ticket.user_id,
                    ticket.return_url,
                    ticket.nonce,
                    verifier,
                    now + self._ttl,
                ),
            )
        return Begun(state=state, code_challenge=s256(verifier))

    async def finish(self, state: str, now: datetime) -> Pending | None:
        """Claim ``state`` (single use). ``None`` when it was never issued (or long purged)."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT user_id, return_url, code_verifier, expires_at, used_at"
                " FROM oauth_states WHERE state_sha256 = %s FOR UPDATE",
                (_digest(state),),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            user_id, return_url, verifier, expires_at, used_at = row
            if used_at is not None:
                return Pending(user_id, return_url, verifier, "used")
            await conn.execute(
                "UPDATE oauth_states SET used_at = %s WHERE state_sha256 = %s",
                (now, _digest(state)),
            )
        outcome: Literal["fresh", "expired"] = "expired" if expires_at <= now else "fresh"
        return Pending(user_id, return_url, verifier, outcome)

    async def _use_nonce(self, conn: AsyncConnection, ticket: Ticket, now: datetime) -> None:
        # Purging here keeps both tables small without a separate job; the indexes make it cheap.
        horizon = now - _KEEP_AFTER_EXPIRY
        await conn.execute("DELETE FROM oauth_states WHERE expires_at < %s", (horizon,))
        await conn.execute(
            "DELETE FROM connect_ticket_nonces WHERE expires_at < %s AND NOT EXISTS"
            " (SELECT 1 FROM oauth_states s WHERE s.ticket_nonce = connect_ticket_nonces.nonce)",
            (horizon,),
        )
        cursor = await conn.execute(
            "INSERT INTO connect_ticket_nonces (nonce, expires_at) VALUES (%s, %s)"
            " ON CONFLICT (nonce) DO NOTHING",
            (ticket.nonce, _ts(ticket.expires_at)),
        )
        if cursor.rowcount != 1:
            raise TicketReplayed
