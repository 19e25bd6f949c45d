"""The revoke outbox: every grant we let go of is revoked at Zoom, however long Zoom takes.

Zoom is owed a revoke whenever we drop a grant: a disconnect, a reconnect to another Zoom user,
a grant exchanged at connect that we refuse or cannot store. The help article promises the
token is revoked, so a failed revoke is kept (``zoom_revoke_outbox``, migration 0008) and
retried until Zoom confirms it or says it no longer knows the token:

- ``owe`` writes the revoke, its refresh token sealed under the key ring as in ``zoom_tokens``,
  inside the caller's transaction (the one that drops the grant: no crash can lose it), already
  claimed by the caller for ``schedule.claim``; the caller runs ``attempt`` after its commit.
- ``run_due`` (the loop of ``zoom-worker serve``, connect/revoker.py) claims due rows with
  ``FOR UPDATE SKIP LOCKED`` and moves them past the claim lease in one short committed
  transaction, then calls Zoom: replicas never take the same row at once, and the rows of a
  process that died are due again when their lease runs out. A revoke repeated that way is
  answered "invalid token", which counts as done.
- an attempt deletes its row when Zoom confirms (``revoked``) or no longer knows the token
  (``invalid``), else pushes it back by a growing delay (``RevokeSchedule``); never given up.
- ``revoke_unstored``: a grant held only in memory (connect could not store it) is revoked at
  once and written here only when that fails; when the database refuses that too there is
  nowhere durable to keep it, and ``zoom_token.revoke_lost`` (``outcome="lost"``) says so.

One Zoom user, several Talivo users: revocation is per app and Zoom user, not per token: a
revoke is followed by the app's ``app_deauthorized`` webhook for that Zoom user
(shared/zoom-api/FACTS.md, OAuth), on which every connection to that Zoom user is deleted. So
nothing is revoked while a connection to the Zoom user remains (``still_connected``: the row is
dropped, ours were deleted already). ``owe`` checks that under a per-Zoom-user lock, so two
users leaving at once cannot each leave the revoke to the other; ``run_due`` checks again when
it claims (someone may have connected that Zoom user meanwhile). A connection made while a
revoke of its Zoom user is in flight (the length of one call) can still be withdrawn by Zoom;
its next refresh then fails and deletes it.

Blocking: ``attempt``, ``run_due`` and ``revoke_unstored`` wait for Zoom (ZoomOAuth's retries:
about 40 s at worst) holding no database connection or lock. Logs carry user ids, the outbox
id, counts and error class names, never a token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from token_store import metrics, outbox_table, table
from token_store.crypto import DecryptError, KeyRing
from token_store.errors import TokenStoreError
from token_store.oauth import ZoomOAuth
from token_store.outbox_table import OwedRow, RevokeReason
from token_store.revoke_policy import DONE, AttemptOutcome, RevokeSchedule

_log = structlog.get_logger("token_store")

# Bound into the ciphertext (crypto.py): an outbox token does not decrypt in zoom_tokens.
_COLUMN = "revoke_outbox.refresh_token"
# The failure paths of connect ask the database with this short a wait: it may be what failed.
_BEST_EFFORT_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class Owed:
    """A claimed revoke, ready to attempt."""

    id: int
    user_id: str
    zoom_user_id: str | None
    refresh_token: str = field(repr=False)
    attempts: int  # failed attempts before this one


class RevokeOutbox:
    """Revokes owed to Zoom, kept in Postgres until paid. Safe to share across coroutines of
    one event loop and to run in several processes against one database."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        keys: KeyRing,
        oauth: ZoomOAuth,
        schedule: RevokeSchedule,
        *,
        clock: Callable[[], datetime],
        spread: Callable[[], float] = random.random,
    ) -> None:
        self._pool = pool
        self._keys = keys
        self._oauth = oauth
        self._schedule = schedule
        self._clock = clock
        self._spread = spread

    # -- owing, inside the caller's transaction ----------------------------------------------

    async def owe(
        self,
        conn: AsyncConnection,
        *,
        user_id: str,
        zoom_user_id: str | None,
        refresh_token: str,
        reason: RevokeReason,
    ) -> Owed | None:
        """Record the revoke in the caller's transaction, claimed by the caller: ``attempt`` it
        once that transaction has committed. ``None`` when a connection to ``zoom_user_id``
        remains (revoking would withdraw it too). Takes the Zoom user's lock
        (``table.lock_zoom_user``): call after the caller's own row lock, if any."""
        if zoom_user_id is not None:
            await table.lock_zoom_user(conn, zoom_user_id)
            if await table.connected(conn, zoom_user_id):
                self._still_connected(user_id, zoom_user_id, reason)
                return None
        owed_id = await outbox_table.insert(
            conn,
            user_id=user_id,
            zoom_user_id=zoom_user_id,
            reason=reason,
            refresh_token=self._seal(user_id, refresh_token),
            key_id=self._keys.active_kid,
            attempts=0,
            next_attempt_at=self._clock() + self._schedule.claim,
        )
        return Owed(owed_id, user_id, zoom_user_id, refresh_token, 0)

    # -- paying ------------------------------------------------------------------------------

    async def attempt(self, owed: Owed) -> AttemptOutcome:
        """Revoke at Zoom once (with ZoomOAuth's retries), then delete the row or schedule it
        again, in its own transaction. Zoom errors never raise; nor does a database error
        writing the outcome (logged: the row stays claimed and is tried again after its
        lease)."""
        outcome: AttemptOutcome
        try:
            outcome = await self._oauth.revoke(owed.refresh_token)
            error = ""
        except TokenStoreError as exc:
            outcome, error = "failed", type(exc).__name__
        await self._settle(owed, outcome, error)
        return outcome

    async def run_due(self, batch: int = 10) -> int:
        """Claim up to ``batch`` due revokes and attempt them concurrently; drop those whose
        Zoom user is connected again. Returns the rows claimed (``batch``: more may be due).
        Database errors raise (nothing claimed, or claims that run out by themselves)."""
        now = self._clock()
        moot: list[OwedRow] = []
        async with self._pool.connection() as conn, conn.transaction():
            rows = await outbox_table.claim_due(conn, now, now + self._schedule.claim, batch)
            for row in rows:
                if row.zoom_user_id is not None and await table.connected(conn, row.zoom_user_id):
                    await outbox_table.delete(conn, row.id)
                    moot.append(row)
        for row in moot:
            assert row.zoom_user_id is not None
            self._still_connected(row.user_id, row.zoom_user_id, row.reason)
        dropped = {row.id for row in moot}
        results = await asyncio.gather(
            *(self._attempt_row(row) for row in rows if row.id not in dropped),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(rows)

    async def refresh_pending(self) -> int:
        """Count the rows owed (due or not) into ``zoom_token_revokes_pending``."""
        async with self._pool.connection() as conn:
            pending = await outbox_table.pending(conn)
        metrics.REVOKES_PENDING.set(pending)
        return pending

    async def revoke_unstored(
        self, user_id: str, zoom_user_id: str | None, refresh_token: str, reason: RevokeReason
    ) -> metrics.RevokeOutcome:
        """Revoke a grant held only in memory: at once; kept here only if that fails; ``lost``
        (logged, counted) when the database will not keep it either. Not revoked when a
        connection to ``zoom_user_id`` remains, as far as the database can tell."""
        if zoom_user_id is not None and await self._connected_as_far_as_known(zoom_user_id):
            self._still_connected(user_id, zoom_user_id, reason)
            return "still_connected"
        try:
            outcome: AttemptOutcome = await self._oauth.revoke(refresh_token)
        except TokenStoreError as exc:
            error = type(exc).__name__
        else:
            self._done(outcome, 1, user_id=user_id, owed_id=None)
            return outcome
        now = self._clock()
        due = self._schedule.next_attempt("failed", 1, now, self._spread())
        assert due is not None
        try:
            async with (
                self._pool.connection(timeout=_BEST_EFFORT_WAIT_SECONDS) as conn,
                conn.transaction(),
            ):
                owed_id = await outbox_table.insert(
                    conn,
                    user_id=user_id,
                    zoom_user_id=zoom_user_id,
                    reason=reason,
                    refresh_token=self._seal(user_id, refresh_token),
                    key_id=self._keys.active_kid,
                    attempts=1,
                    next_attempt_at=due,
                    last_error=error,
                )
        except psycopg.Error as exc:
            metrics.count_revoke("failed")
            metrics.count_revoke("lost")
            _log.error(
                "zoom_token.revoke_lost",
                user_id=user_id,
                zoom_user_id=zoom_user_id,
                reason=reason,
                error=error,
                database_error=type(exc).__name__,
            )
            return "lost"
        self._failed("failed", error, 1, due - now, user_id=user_id, owed_id=owed_id)
        return "failed"

    # -- key rotation ------------------------------------------------------------------------

    async def rekey(self, batch_size: int) -> tuple[int, list[str]]:
        """Re-seal every row not under the active key, ``batch_size`` per transaction. Returns
        the rows re-sealed and the key ids of rows that did not decrypt (left as they are)."""
        active = self._keys.active_kid
        done, after = 0, 0
        unreadable: list[str] = []
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                rows = await outbox_table.not_under_key(conn, active, after, max(1, batch_size))
                for row in rows:
                    after = row.id
                    try:
                        token = self._open(row)
                    except DecryptError:
                        _log.error("zoom_token.rekey_unreadable", owed_id=row.id, kid=row.key_id)
                        unreadable.append(row.key_id)
                        continue
                    sealed = self._seal(row.user_id, token)
                    await outbox_table.rekey(conn, row.id, sealed, active)
                    done += 1
            if not rows:
                return done, unreadable

    # -- inside ------------------------------------------------------------------------------

    async def _attempt_row(self, row: OwedRow) -> None:
        try:
            token = self._open(row)
        except DecryptError:
            _log.error(
                "zoom_token.revoke_unreadable", owed_id=row.id, user_id=row.user_id, kid=row.key_id
            )
            owed = Owed(row.id, row.user_id, row.zoom_user_id, "", row.attempts)
            await self._settle(owed, "unreadable", "DecryptError")
            return
        await self.attempt(Owed(row.id, row.user_id, row.zoom_user_id, token, row.attempts))

    async def _settle(self, owed: Owed, outcome: AttemptOutcome, error: str) -> None:
        failures = owed.attempts if outcome in DONE else owed.attempts + 1
        now = self._clock()
        due = self._schedule.next_attempt(outcome, failures, now, self._spread())
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if due is None:
                    await outbox_table.delete(conn, owed.id)
                else:
                    await outbox_table.retry_at(conn, owed.id, failures, due, error)
        except psycopg.Error as exc:
            _log.error(
                "zoom_token.revoke_unsettled",
                owed_id=owed.id,
                user_id=owed.user_id,
                outcome=outcome,
                error=type(exc).__name__,
            )
        if due is None:
            self._done(outcome, owed.attempts + 1, user_id=owed.user_id, owed_id=owed.id)
        else:
            self._failed(outcome, error, failures, due - now, user_id=owed.user_id, owed_id=owed.id)

    async def _connected_as_far_as_known(self, zoom_user_id: str) -> bool:
        try:
            async with self._pool.connection(timeout=_BEST_EFFORT_WAIT_SECONDS) as conn:
                return await table.connected(conn, zoom_user_id)
        except psycopg.Error:
            return False  # cannot tell: revoking a grant nobody stores is the safer side

    def _seal(self, user_id: str, token: str) -> bytes:
        return self._keys.encrypt(token, user_id=user_id, column=_COLUMN)

    def _open(self, row: OwedRow) -> str:
        return self._keys.decrypt(
            row.refresh_token, kid=row.key_id, user_id=row.user_id, column=_COLUMN
        )

    # -- one log line and one count per outcome ----------------------------------------------

    @staticmethod
    def _still_connected(user_id: str, zoom_user_id: str, reason: str) -> None:
        metrics.count_revoke("still_connected")
        _log.info(
            "zoom_token.revoke_skipped",
            user_id=user_id,
            zoom_user_id=zoom_user_id,
            reason=reason,
            why="zoom_user_still_connected",
        )

    @staticmethod
    def _done(outcome: AttemptOutcome, attempts: int, *, user_id: str, owed_id: int | None) -> None:
        metrics.count_revoke(outcome)
        _log.info(
            "zoom_token.revoked",
            user_id=user_id,
            owed_id=owed_id,
            outcome=outcome,
            attempts=attempts,
        )

    @staticmethod
    def _failed(
        outcome: AttemptOutcome,
        error: str,
        failures: int,
        retry_in: timedelta,
        *,
        user_id: str,
        owed_id: int,
    ) -> None:
        metrics.count_revoke(outcome)
        _log.warning(
            "zoom_token.revoke_failed",
            user_id=user_id,
            owed_id=owed_id,
            outcome=outcome,
            error=error,
            attempts=failures,
            retry_in_seconds=round(retry_in.total_seconds(), 1),
        )
