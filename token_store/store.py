"""Zoom connections in Postgres: hand out access tokens, refresh them once, connect, disconnect.

Zoom rotates the refresh token on every refresh and kills the old one, so a refresh must happen
exactly once however many callers need it:

- across processes, the refresh runs in a transaction holding the row lock
  (``SELECT ... FOR UPDATE``); the row is re-read under the lock and refreshed only if it still
  needs it, and the new pair is stored in that same transaction;
- within a process, concurrent callers for one user share one such transaction
  (``SingleFlight``), so twenty coroutines cost one lock, not twenty.

A refresh answer can be lost after Zoom rotated the pair (timeout, dropped connection); the
retry then meets ``invalid_grant``. The first ``invalid_grant`` is therefore not final: the lock
is released, the row re-read under a fresh lock (someone may have stored a newer pair) and the
refresh tried once more; a second ``invalid_grant`` deletes the tokens (``AuthorizationExpired``).

Every grant let go of (disconnect, reconnect to another Zoom user, a connect refused or not
stored) is owed a revoke at Zoom, kept in the revoke outbox until paid (``revokes.py``).

Nothing here logs or raises with a token, a code or a key: only user ids, key ids and error
class names.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_none

from token_store import metrics, scopes, table
from token_store.crypto import DecryptError, KeyRing
from token_store.errors import (
    AccountInactive,
    AuthorizationExpired,
    InvalidGrant,
    MissingPermissions,
    NotConnected,
    OAuthRejected,
    TokenServiceUnavailable,
    TokenStoreError,
    TokenUnreadable,
)
from token_store.models import ConnectionStatus, Deauthorized, ZoomGrant
from token_store.oauth import TokenAnswer, ZoomOAuth
from token_store.outbox_table import RevokeReason
from token_store.revoke_policy import RevokeSchedule
from token_store.revokes import Owed, RevokeOutbox
from token_store.single_flight import SingleFlight

_log = structlog.get_logger("token_store")

# When Zoom's token endpoint is down, a token still valid this long is handed out unrefreshed.
_STILL_USABLE = timedelta(seconds=30)
# A first invalid_grant may be our own lost answer: one more try after a re-read (see above).
_REFRESH_ATTEMPTS = 2


class _FirstInvalidGrant(Exception):
    """A non-final ``invalid_grant``: ends the transaction, so the refresh is tried anew."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Opened:
    row: table.SealedRow
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)


# Reads one user's row as ``table.READ`` does (outside any transaction), or None.
RowReader = Callable[[str], Awaitable[table.SealedRow | None]]


class TokenStore:
    """The one way to Zoom tokens. Safe to share across coroutines of one event loop and to run
    in several processes against one database."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        keys: KeyRing,
        oauth: ZoomOAuth,
        refresh_margin: timedelta = timedelta(minutes=5),
        *,
        clock: Callable[[], datetime] = _utc_now,
        revoke_schedule: RevokeSchedule | None = None,
        max_concurrent_refreshes: int | None = None,
        read_row: RowReader | None = None,
    ) -> None:
        self._pool = pool
        # How ``get_access_token`` reads a row: a pooled connection each, unless the caller
        # has a cheaper way (the worker batches concurrent reads into one round trip).
        self._read_row = read_row or self._read_pooled
        self._keys = keys
        self._oauth = oauth
        self._margin = refresh_margin
        self._clock = clock
        self._flights: SingleFlight[tuple[str, str], ZoomGrant] = SingleFlight()
        # A refresh holds a pooled connection (the row lock) across Zoom's OAuth call: at most
        # this many at once, so a burst of refreshes (tokens expiring together) queues here
        # and leaves the rest of the pool to everything else. None: as many as asked.
        self._refreshing = (
            asyncio.Semaphore(max_concurrent_refreshes) if max_concurrent_refreshes else None
        )
        # The revoke outbox; ``zoom-worker serve`` runs its loop (connect/revoker.py).
        self.revokes = RevokeOutbox(
            pool, keys, oauth, revoke_schedule or RevokeSchedule(), clock=clock
        )

    # -- tokens for the worker ------------------------------------------------------------

    async def get_access_token(self, user_id: str) -> ZoomGrant:
        """A grant valid for at least the refresh margin, refreshing it first if needed.

        Raises ``NotConnected``, ``AuthorizationExpired`` (tokens deleted), ``AccountInactive``,
        ``TokenUnreadable``, ``OAuthRejected`` or ``TokenServiceUnavailable`` (retryable).
        """
        row = await self._read_row(user_id)
        if row is None:
            raise NotConnected(f"user {user_id} has no Zoom connection")
        if not self._expiring(row):
            return _grant(row, self._open(row, "access_token"))
        return await self._flights.run((user_id, ""), lambda: self._refresh(user_id, None))

    async def _read_pooled(self, user_id: str) -> table.SealedRow | None:
        async with self._pool.connection() as conn:
            return await table.read(conn, user_id)

    async def refresh_after_rejection(self, user_id: str, rejected: ZoomGrant) -> ZoomGrant:
        """Zoom answered 401 (code 124) to ``rejected``: refresh, unless the stored access token
        is already a different one (someone refreshed meanwhile), which is returned instead."""
        digest = hashlib.sha256(rejected.access_token.encode()).hexdigest()
        return await self._flights.run(
            (user_id, digest), lambda: self._refresh(user_id, rejected.access_token)
        )

    async def _refresh(self, user_id: str, rejected: str | None) -> ZoomGrant:
        """Refresh under the row lock; a first ``invalid_grant`` is retried once, right away,
        in a new transaction (the lock released, the row re-read); the second one is final."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_FirstInvalidGrant),
            stop=stop_after_attempt(_REFRESH_ATTEMPTS),
            wait=wait_none(),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._refresh_locked(
                    user_id, rejected, attempt.retry_state.attempt_number
                )
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _refresh_locked(self, user_id: str, rejected: str | None, attempt: int) -> ZoomGrant:
        if self._refreshing is None:
            return await self._refresh_holding(user_id, rejected, attempt)
        async with self._refreshing:
            return await self._refresh_holding(user_id, rejected, attempt)

    async def _refresh_holding(self, user_id: str, rejected: str | None, attempt: int) -> ZoomGrant:
        expired = False
        async with self._pool.connection() as conn, conn.transaction():
            row = await table.read(conn, user_id, lock=True)
            if row is None:
                raise NotConnected(f"user {user_id} has no Zoom connection")
            opened = self._open_both(row)
            if not self._needs_refresh(opened, rejected):
                return _grant(row, opened.access_token)
            try:
                answer = await self._oauth.refresh(opened.refresh_token)
            except InvalidGrant:
                if attempt < _REFRESH_ATTEMPTS:
                    # Maybe our own earlier answer was lost, maybe someone stored a newer
                    # pair: release the lock (the transaction ends), re-read, try once more.
                    _log.warning("zoom_token.invalid_grant_first", user_id=user_id)
                    raise _FirstInvalidGrant from None
                await table.delete(conn, user_id)
                expired = True
            except TokenServiceUnavailable:
                metrics.count_refresh("unavailable")
                usable = row.access_expires_at - self._clock() > _STILL_USABLE
                if rejected is None and usable:
                    _log.warning("zoom_token.refresh_unavailable_kept", user_id=user_id)
                    return _grant(row, opened.access_token)
                raise
            except AccountInactive:
                metrics.count_refresh("inactive")
                raise
            except OAuthRejected:
                metrics.count_refresh("rejected")
                raise
            else:
                expires_at = self._clock() + timedelta(seconds=answer.expires_in)
                await table.store_refreshed(
                    conn, user_id, self._seal(user_id, answer), expires_at, answer.scopes
                )
        if expired:
            # Raised after the block so that the delete is committed first.
            metrics.count_refresh("expired")
            _log.warning("zoom_token.expired_deleted", user_id=user_id)
            raise AuthorizationExpired(
                f"Zoom no longer honours the grant of user {user_id}; tokens deleted"
            )
        metrics.count_refresh("refreshed")
        _log.info("zoom_token.refreshed", user_id=user_id, attempt=attempt)
        return ZoomGrant(
            user_id=user_id,
            zoom_user_id=row.zoom_user_id,
            zoom_account_id=row.zoom_account_id,
            access_token=answer.access_token,
            expires_at=expires_at,
        )

    def _expiring(self, row: table.SealedRow) -> bool:
        return row.access_expires_at - self._clock() <= self._margin

    def _needs_refresh(self, opened: _Opened, rejected: str | None) -> bool:
        if self._expiring(opened.row):
            return True
        return rejected is not None and hmac.compare_digest(
            opened.access_token.encode(), rejected.encode()
        )

    # -- connections for the HTTP side and operators ---------------------------------------

    async def connect(
        self, user_id: str, code: str, code_verifier: str | None, redirect_uri: str
    ) -> ConnectionStatus:
        """Exchange the authorization code, identify the Zoom user and store the grant,
        replacing any previous connection of ``user_id``.

        A grant exchanged here and then refused (``TokenStoreError``) or not stored (the
        database failed: that error is re-raised) is revoked at once, and kept in the revoke
        outbox when that fails (``RevokeOutbox.revoke_unstored``). A replaced grant of another
        Zoom user is owed a revoke in the transaction that replaces it, attempted after."""
        answer = await self._oauth.exchange_code(code, code_verifier, redirect_uri)
        zoom_user_id: str | None = None
        try:
            lacking = scopes.missing(answer.scopes)
            if lacking:
                raise MissingPermissions(
                    f"the Zoom grant for {user_id} lacks: {', '.join(lacking)}", lacking
                )
            me = await self._oauth.get_me(answer.access_token)
            zoom_user_id = me.id
            if me.status == "inactive":
                raise AccountInactive(f"the Zoom user connecting for {user_id} is deactivated")
        except TokenStoreError:
            await self.revokes.revoke_unstored(
                user_id, zoom_user_id, answer.refresh_token, "refused"
            )
            raise
        expires_at = self._clock() + timedelta(seconds=answer.expires_in)
        owed: Owed | None = None
        try:
            async with self._pool.connection() as conn, conn.transaction():
                old = await table.read(conn, user_id, lock=True)
                row = await table.upsert(
                    conn,
                    user_id=user_id,
                    zoom_user_id=me.id,
                    zoom_account_id=me.account_id,
                    scopes=answer.scopes,
                    tokens=self._seal(user_id, answer),
                    access_expires_at=expires_at,
                )
                # Zoom's revoke withdraws the app's whole authorization for that Zoom user,
                # which would kill the grant just stored if the same Zoom user re-authorised:
                # their old pair is superseded and simply forgotten. A different Zoom user's
                # grant is owed a revoke (unless another connection to it remains).
                if old is not None and old.zoom_user_id != me.id:
                    owed = await self._owe(conn, old, "replaced")
        except Exception:
            # Exchanged but not stored: nothing of ours holds this grant (an earlier
            # connection of the user is untouched). The error goes on to the caller.
            await self.revokes.revoke_unstored(user_id, me.id, answer.refresh_token, "unstored")
            raise
        _log.info("zoom_token.connected", user_id=user_id, replaced=old is not None)
        if owed is not None:
            await self.revokes.attempt(owed)
        return _status(row)

    async def disconnect(self, user_id: str) -> bool:
        """Delete the connection and record the revoke Zoom is owed, in one committed
        transaction; then attempt that revoke once (ZoomOAuth's retries inside, no database
        connection held). A revoke that fails stays in the outbox for the revoke loop of
        ``zoom-worker serve``; one whose Zoom user another connection still holds is not made
        (see ``revokes.py``). Returns whether a connection existed."""
        async with self._pool.connection() as conn, conn.transaction():
            old = await table.delete(conn, user_id)
            owed = None if old is None else await self._owe(conn, old, "disconnect")
        if old is None:
            return False
        _log.info("zoom_token.disconnected", user_id=user_id)
        if owed is not None:
            await self.revokes.attempt(owed)
        return True

    async def disconnect_zoom_user(self, zoom_user_id: str) -> int:
        """Delete every connection to ``zoom_user_id`` (Zoom's ``app_deauthorized`` webhook:
        Zoom already revoked the grant). Returns the number of connections deleted."""
        async with self._pool.connection() as conn, conn.transaction():
            deleted = await table.delete_zoom_user(conn, zoom_user_id)
        _log.info("zoom_token.deauthorized", zoom_user_id=zoom_user_id, deleted=deleted)
        return deleted

    async def deauthorize(self, zoom_user_id: str, deauthorized_at: datetime) -> Deauthorized:
        """Zoom's ``app_deauthorized`` webhook: delete the connections to ``zoom_user_id``
        made at or before ``deauthorized_at`` (Zoom already revoked their grant). A connection
        made after it (``connected_at``, set by every connect) is a newer consent that a late
        or replayed deauthorization must not undo: it is kept, and logged."""
        async with self._pool.connection() as conn, conn.transaction():
            deleted, kept = await table.delete_zoom_user_connected_by(
                conn, zoom_user_id, deauthorized_at
            )
        _log.info("zoom_token.deauthorized", zoom_user_id=zoom_user_id, deleted=deleted)
        if kept:
            _log.warning(
                "zoom_token.deauthorization_predates_connection",
                zoom_user_id=zoom_user_id,
                kept=kept,
                deauthorized_at=deauthorized_at.isoformat(),
            )
        return Deauthorized(deleted=deleted, kept=kept)

    async def status(self, user_id: str) -> ConnectionStatus | None:
        async with self._pool.connection() as conn:
            row = await table.read(conn, user_id)
        return None if row is None else _status(row)

    async def rotate_key(self, batch_size: int = 100) -> int:
        """Re-encrypt every connection and every owed revoke not sealed under the active key,
        ``batch_size`` rows per committed transaction (online: each batch holds its row locks
        briefly; resumable: a rerun picks up what is left). Returns the rows re-encrypted. Rows
        that do not decrypt are left as they are and reported by a ``TokenUnreadable`` at the
        end."""
        active = self._keys.active_kid
        done, after = 0, ""
        unreadable: list[str] = []
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                rows = await table.not_under_key(conn, active, after, max(1, batch_size))
                for row in rows:
                    after = row.user_id
                    try:
                        opened = self._open_both(row)
                    except TokenUnreadable as exc:
                        _log.error("zoom_token.rekey_unreadable", user_id=row.user_id, kid=exc.kid)
                        unreadable.append(exc.kid)
                        continue
                    sealed = self._seal_pair(row.user_id, opened.access_token, opened.refresh_token)
                    await table.rekey(conn, row.user_id, sealed)
                    done += 1
                    metrics.REKEYED.inc()
            if not rows:
                break
        owed, owed_unreadable = await self.revokes.rekey(batch_size)
        done += owed
        unreadable += owed_unreadable
        _log.info(
            "zoom_token.rekeyed", rows=done, revokes=owed, kid=active, unreadable=len(unreadable)
        )
        if unreadable:
            kids = ", ".join(sorted(set(unreadable)))
            raise TokenUnreadable(
                f"re-encrypted {done} connection(s); {len(unreadable)} did not decrypt "
                f"(key ids {kids})",
                kid=unreadable[0],
            )
        return done

    # -- sealing and revoking ---------------------------------------------------------------

    def _seal(self, user_id: str, answer: TokenAnswer) -> table.SealedTokens:
        return self._seal_pair(user_id, answer.access_token, answer.refresh_token)

    def _seal_pair(self, user_id: str, access: str, refresh: str) -> table.SealedTokens:
        return table.SealedTokens(
            access_token=self._keys.encrypt(access, user_id=user_id, column="access_token"),
            refresh_token=self._keys.encrypt(refresh, user_id=user_id, column="refresh_token"),
            key_id=self._keys.active_kid,
        )

    def _open(self, row: table.SealedRow, column: str) -> str:
        blob = row.access_token if column == "access_token" else row.refresh_token
        try:
            return self._keys.decrypt(blob, kid=row.key_id, user_id=row.user_id, column=column)
        except DecryptError as exc:
            raise TokenUnreadable(
                f"the Zoom connection of user {row.user_id} does not decrypt: {exc}",
                kid=row.key_id,
            ) from None

    def _open_both(self, row: table.SealedRow) -> _Opened:
        return _Opened(row, self._open(row, "access_token"), self._open(row, "refresh_token"))

    async def _owe(
        self, conn: AsyncConnection, row: table.SealedRow, reason: RevokeReason
    ) -> Owed | None:
        """Owe the revoke of a connection being dropped, in the caller's transaction (which
        holds the row's lock). A row that does not decrypt cannot be revoked by us: logged."""
        try:
            refresh = self._open(row, "refresh_token")
        except TokenUnreadable as exc:
            metrics.count_revoke("unreadable")
            _log.error("zoom_token.revoke_unreadable", user_id=row.user_id, kid=exc.kid)
            return None
        return await self.revokes.owe(
            conn,
            user_id=row.user_id,
            zoom_user_id=row.zoom_user_id,
            refresh_token=refresh,
            reason=reason,
        )


def _grant(row: table.SealedRow, access_token: str) -> ZoomGrant:
    return ZoomGrant(
        user_id=row.user_id,
        zoom_user_id=row.zoom_user_id,
        zoom_account_id=row.zoom_account_id,
        access_token=access_token,
        expires_at=row.access_expires_at,
    )


def _status(row: table.SealedRow) -> ConnectionStatus:
    return ConnectionStatus(
        user_id=row.user_id,
        zoom_user_id=row.zoom_user_id,
        zoom_account_id=row.zoom_account_id,
        scopes=tuple(row.scopes),
        access_expires_at=row.access_expires_at,
        key_id=row.key_id,
        connected_at=row.connected_at,
        refreshed_at=row.refreshed_at,
    )
