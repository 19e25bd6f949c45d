"""The revoke outbox against real Postgres and the Zoom emulator: every grant we let go of is
revoked at Zoom in the end, however long Zoom fails, without ever revoking a grant another
Talivo user still holds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from devservices.zoom_emulator import Fault, ZoomEmulator
from prometheus_client import REGISTRY
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from structlog.testing import capture_logs

from connect.revoker import revoking, run_pass
from token_store import KeyRing, TokenStore
from token_store.crypto import generate_key
from token_store.revoke_policy import RevokeSchedule

from .conftest import REDIRECT_URI, connect_new_user, make_oauth

REVOKE = "POST /oauth/revoke"
COLUMN = "revoke_outbox.refresh_token"
# Fast enough for tests; the claim lease stays far above one attempt, as in production.
FAST = RevokeSchedule(first=timedelta(milliseconds=100), cap=timedelta(milliseconds=400))


@pytest.fixture(autouse=True)
def clean_emulator(zoom: ZoomEmulator) -> None:
    zoom.faults = []


@pytest.fixture
def store(
    pool: AsyncConnectionPool, keys: KeyRing, http: httpx.AsyncClient, zoom: ZoomEmulator
) -> TokenStore:
    return TokenStore(pool, keys, make_oauth(http, zoom), revoke_schedule=FAST)


@pytest.fixture(scope="module")
async def refusing_database(pool: AsyncConnectionPool) -> None:
    """Real Postgres errors on demand: zoom_tokens refuses users named ``nostore-*`` and
    ``nowhere-*``; the revoke outbox refuses ``nowhere-*`` too."""
    async with pool.connection() as conn:
        await conn.execute(
            """
            CREATE FUNCTION refuse_named() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.user_id LIKE ANY (TG_ARGV) THEN
                    RAISE EXCEPTION 'refused by the test';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_tokens BEFORE INSERT OR UPDATE ON zoom_tokens
                FOR EACH ROW EXECUTE FUNCTION refuse_named('nostore-%', 'nowhere-%');
            CREATE TRIGGER refuse_outbox BEFORE INSERT OR UPDATE ON zoom_revoke_outbox
                FOR EACH ROW EXECUTE FUNCTION refuse_named('nowhere-%');
            """
        )


# -- helpers ---------------------------------------------------------------------------------


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def revokes(outcome: str) -> float:
    return counter("zoom_token_revokes_total", outcome=outcome)


async def owed(pool: AsyncConnectionPool, user_id: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, user_id, zoom_user_id, reason, refresh_token, key_id, attempts,"
            " last_error, next_attempt_at FROM zoom_revoke_outbox WHERE user_id = %s",
            (user_id,),
        )
        return await cur.fetchall()


async def make_due(pool: AsyncConnectionPool, user_id: str | None = None) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE zoom_revoke_outbox SET next_attempt_at = now() - interval '1 second'"
            " WHERE %s::text IS NULL OR user_id = %s",
            (user_id, user_id),
        )


async def accepted(http: httpx.AsyncClient, zoom: ZoomEmulator, tokens: list[str]) -> bool:
    """Whether Zoom takes any of ``tokens`` as an access token (a live grant's would be)."""
    for token in tokens:
        response = await http.get(
            f"{zoom.api_base_url}/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code == 200:
            return True
    return False


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


def fail_revokes(zoom: ZoomEmulator, attempts: int | None) -> None:
    """Zoom's revoke answers 503 for ``attempts`` whole attempts (3 calls each), or forever."""
    count = None if attempts is None else 3 * attempts
    zoom.faults = [Fault(kind="error", endpoint=REVOKE, status=503, count=count)]


def new_secrets(zoom: ZoomEmulator, before: list[str]) -> list[str]:
    return zoom.issued_secrets()[len(before) :]


# -- a failed revoke is kept and paid later ----------------------------------------------------


async def test_a_failed_revoke_is_kept_sealed_and_the_loop_revokes_it_once_zoom_recovers(
    store: TokenStore,
    zoom: ZoomEmulator,
    pool: AsyncConnectionPool,
    http: httpx.AsyncClient,
    keys: KeyRing,
) -> None:
    await connect_new_user(store, zoom, "u-late")
    grant = await store.get_access_token("u-late")
    fail_revokes(zoom, attempts=2)  # the one at disconnect, and the loop's first
    before = {o: revokes(o) for o in ("revoked", "failed")}

    assert await store.disconnect("u-late") is True

    (row,) = await owed(pool, "u-late")
    assert (row["reason"], row["attempts"], row["last_error"]) == (
        "disconnect",
        1,
        "TokenServiceUnavailable",
    )
    # Sealed under the key ring, never in plaintext: it opens to the grant's refresh token.
    token = keys.decrypt(row["refresh_token"], kid=row["key_id"], user_id="u-late", column=COLUMN)
    assert token in zoom.issued_secrets() and token.encode() not in row["refresh_token"]
    assert await accepted(http, zoom, [grant.access_token])  # still live on Zoom
    assert await store.revokes.refresh_pending() >= 1
    assert counter("zoom_token_revokes_pending") >= 1

    async with revoking(store.revokes, interval=0.05):
        await eventually(lambda: _gone(pool, "u-late"))

    assert not await accepted(http, zoom, [grant.access_token])  # revoked at Zoom
    assert revokes("revoked") == before["revoked"] + 1
    assert revokes("failed") == before["failed"] + 2
    assert await store.revokes.refresh_pending() == 0
    assert counter("zoom_token_revokes_pending") == 0


async def _gone(pool: AsyncConnectionPool, user_id: str) -> bool:
    return not await owed(pool, user_id)


async def test_a_revoke_zoom_answers_invalid_token_for_is_done(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    await connect_new_user(store, zoom, "u-removed")
    grant = await store.get_access_token("u-removed")
    fail_revokes(zoom, attempts=1)
    await store.disconnect("u-removed")
    assert len(await owed(pool, "u-removed")) == 1
    # Meanwhile the user removed the app in Zoom's marketplace: Zoom forgot the grant.
    assert await make_oauth(http, zoom).revoke(grant.access_token) == "revoked"
    invalid = revokes("invalid")

    await make_due(pool, "u-removed")
    await run_pass(store.revokes)

    assert await owed(pool, "u-removed") == []
    assert revokes("invalid") == invalid + 1


async def test_a_revoke_keeps_being_retried_with_growing_delays(
    pool: AsyncConnectionPool, keys: KeyRing, http: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    schedule = RevokeSchedule(first=timedelta(milliseconds=100), cap=timedelta(seconds=1))
    store = TokenStore(pool, keys, make_oauth(http, zoom), revoke_schedule=schedule)
    await connect_new_user(store, zoom, "u-patient")
    fail_revokes(zoom, attempts=None)
    await store.disconnect("u-patient")
    waits = []
    for _ in range(3):
        await make_due(pool, "u-patient")
        started = time.time()
        await run_pass(store.revokes)
        (row,) = await owed(pool, "u-patient")
        waits.append(row["next_attempt_at"].timestamp() - started)
    assert row["attempts"] == 4
    # The 2nd, 3rd and 4th failures: 200, 400 and 800 ms, each stretched by up to 10 %.
    assert 0.2 <= waits[0] < 0.4 <= waits[1] < 0.8 <= waits[2] < 1.5

    zoom.faults = []
    await make_due(pool, "u-patient")
    await run_pass(store.revokes)
    assert await owed(pool, "u-patient") == []


# -- a grant exchanged but never stored ------------------------------------------------------


@pytest.mark.usefixtures("refusing_database")
async def test_a_grant_the_database_refuses_to_store_is_revoked_at_once(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    zoom_user = zoom.add_user("nostore-1@example.com")
    code = zoom.authorize(zoom_user.id, redirect_uri=REDIRECT_URI)
    issued = zoom.issued_secrets()
    calls, revoked = zoom.calls(REVOKE), revokes("revoked")

    with pytest.raises(psycopg.Error):
        await store.connect("nostore-1", code, None, REDIRECT_URI)

    assert zoom.calls(REVOKE) == calls + 1
    assert revokes("revoked") == revoked + 1
    assert not await accepted(http, zoom, new_secrets(zoom, issued))  # the grant is dead
    assert await store.status("nostore-1") is None
    assert await owed(pool, "nostore-1") == []


@pytest.mark.usefixtures("refusing_database")
async def test_an_unstored_grant_whose_revoke_fails_waits_in_the_outbox(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    zoom_user = zoom.add_user("nostore-2@example.com")
    code = zoom.authorize(zoom_user.id, redirect_uri=REDIRECT_URI)
    issued = zoom.issued_secrets()
    fail_revokes(zoom, attempts=1)

    with pytest.raises(psycopg.Error):
        await store.connect("nostore-2", code, None, REDIRECT_URI)

    (row,) = await owed(pool, "nostore-2")
    assert (row["reason"], row["zoom_user_id"], row["attempts"]) == ("unstored", zoom_user.id, 1)
    assert await accepted(http, zoom, new_secrets(zoom, issued))
    await make_due(pool, "nostore-2")
    await run_pass(store.revokes)
    assert await owed(pool, "nostore-2") == []
    assert not await accepted(http, zoom, new_secrets(zoom, issued))


@pytest.mark.usefixtures("refusing_database")
async def test_with_the_outbox_refused_too_the_grant_is_reported_lost_without_its_token(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    zoom_user = zoom.add_user("nowhere-1@example.com")
    code = zoom.authorize(zoom_user.id, redirect_uri=REDIRECT_URI)
    fail_revokes(zoom, attempts=None)
    lost = revokes("lost")

    with capture_logs() as logs, pytest.raises(psycopg.Error):
        await store.connect("nowhere-1", code, None, REDIRECT_URI)

    assert revokes("lost") == lost + 1
    (line,) = [e for e in logs if e["event"] == "zoom_token.revoke_lost"]
    assert (line["user_id"], line["zoom_user_id"], line["reason"]) == (
        "nowhere-1",
        zoom_user.id,
        "unstored",
    )
    assert line["log_level"] == "error"
    leaked = [s for s in zoom.issued_secrets() if s in repr(logs)]
    assert not leaked
    assert await owed(pool, "nowhere-1") == []


def _dead_database_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/gone?connect_timeout=1"


@pytest.fixture
async def dead_pool() -> AsyncIterator[AsyncConnectionPool]:
    pool: AsyncConnectionPool = AsyncConnectionPool(
        _dead_database_url(), min_size=1, timeout=1, open=False
    )
    await pool.open(wait=False)
    try:
        yield pool
    finally:
        await pool.close(timeout=1)


@pytest.mark.parametrize(
    ("zoom_revokes", "outcome"),
    [(True, "revoked"), (False, "lost")],
    ids=["revoked_at_once", "revoke_fails_too_lost"],
)
async def test_with_the_database_down_the_grant_is_revoked_at_once_or_reported_lost(
    dead_pool: AsyncConnectionPool,
    keys: KeyRing,
    http: httpx.AsyncClient,
    zoom: ZoomEmulator,
    zoom_revokes: bool,
    outcome: str,
) -> None:
    store = TokenStore(dead_pool, keys, make_oauth(http, zoom), revoke_schedule=FAST)
    zoom_user = zoom.add_user(f"down-{outcome}@example.com")
    code = zoom.authorize(zoom_user.id, redirect_uri=REDIRECT_URI)
    issued = zoom.issued_secrets()
    if not zoom_revokes:
        fail_revokes(zoom, attempts=None)
    before = revokes(outcome)

    with capture_logs() as logs, pytest.raises(psycopg.Error):
        await store.connect(f"down-{outcome}", code, None, REDIRECT_URI)

    assert revokes(outcome) == before + 1
    assert await accepted(http, zoom, new_secrets(zoom, issued)) is not zoom_revokes
    lost = [e for e in logs if e["event"] == "zoom_token.revoke_lost"]
    assert len(lost) == (0 if zoom_revokes else 1)
    assert not [s for s in zoom.issued_secrets() if s in repr(logs)]


# -- one Zoom user, two Talivo users ---------------------------------------------------------


async def _connect_existing(
    store: TokenStore, zoom: ZoomEmulator, user_id: str, zoom_id: str
) -> str:
    code = zoom.authorize(zoom_id, redirect_uri=REDIRECT_URI)
    await store.connect(user_id, code, None, REDIRECT_URI)
    return (await store.get_access_token(user_id)).access_token


async def test_disconnecting_one_of_two_talivo_users_on_one_zoom_user_keeps_the_other(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    first = await connect_new_user(store, zoom, "u-shared-a")
    shared = first.zoom_user.id
    other = await _connect_existing(store, zoom, "u-shared-b", shared)
    calls, still = zoom.calls(REVOKE), revokes("still_connected")

    assert await store.disconnect("u-shared-a") is True

    # Zoom's revoke withdraws the app from the whole Zoom user (and its app_deauthorized
    # webhook deletes every connection to it): not made while u-shared-b holds that user.
    assert zoom.calls(REVOKE) == calls
    assert revokes("still_connected") == still + 1
    assert await owed(pool, "u-shared-a") == []
    assert await accepted(http, zoom, [(await store.get_access_token("u-shared-b")).access_token])

    assert await store.disconnect("u-shared-b") is True  # the last one out revokes

    assert zoom.calls(REVOKE) == calls + 1
    assert not await accepted(http, zoom, [other])
    assert await owed(pool, "u-shared-b") == []


async def test_two_users_of_one_zoom_user_leaving_at_once_leave_one_revoke(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    first = await connect_new_user(store, zoom, "u-both-a")
    await _connect_existing(store, zoom, "u-both-b", first.zoom_user.id)
    calls, still = zoom.calls(REVOKE), revokes("still_connected")

    assert await asyncio.gather(store.disconnect("u-both-a"), store.disconnect("u-both-b")) == [
        True,
        True,
    ]

    assert zoom.calls(REVOKE) == calls + 1  # neither left it to the other
    assert revokes("still_connected") == still + 1


async def test_a_pending_revoke_is_dropped_when_its_zoom_user_is_connected_again(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    first = await connect_new_user(store, zoom, "u-back")
    fail_revokes(zoom, attempts=1)
    await store.disconnect("u-back")
    assert len(await owed(pool, "u-back")) == 1
    token = await _connect_existing(store, zoom, "u-back", first.zoom_user.id)
    calls, still = zoom.calls(REVOKE), revokes("still_connected")

    await make_due(pool, "u-back")
    await run_pass(store.revokes)

    assert await owed(pool, "u-back") == []
    assert zoom.calls(REVOKE) == calls  # revoking would withdraw the new connection too
    assert revokes("still_connected") == still + 1
    assert await accepted(http, zoom, [token])


async def test_reconnecting_another_zoom_user_owes_the_old_grant_a_revoke(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    await connect_new_user(store, zoom, "u-moved")
    old = await store.get_access_token("u-moved")
    fail_revokes(zoom, attempts=1)

    await connect_new_user(store, zoom, "u-moved")

    (row,) = await owed(pool, "u-moved")
    assert (row["reason"], row["zoom_user_id"]) == ("replaced", old.zoom_user_id)
    await make_due(pool, "u-moved")
    await run_pass(store.revokes)
    assert await owed(pool, "u-moved") == []
    assert not await accepted(http, zoom, [old.access_token])


# -- replicas, restarts, key rotation ---------------------------------------------------------


async def test_two_replicas_share_the_due_revokes_and_revoke_each_once(
    pool: AsyncConnectionPool, keys: KeyRing, http: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    first = TokenStore(pool, keys, make_oauth(http, zoom), revoke_schedule=FAST)
    users = [f"replica-{n}" for n in range(6)]
    for user in users:
        await connect_new_user(first, zoom, user)
    fail_revokes(zoom, attempts=len(users))
    for user in users:
        await first.disconnect(user)
    async with pool.connection() as conn:  # only this test's rows are due
        await conn.execute("DELETE FROM zoom_revoke_outbox WHERE user_id NOT LIKE 'replica-%'")
    # A second process (a restart, or another replica) finds the rows the first one left.
    second = TokenStore(pool, keys, make_oauth(http, zoom), revoke_schedule=FAST)
    zoom.faults = [Fault(kind="latency", endpoint=REVOKE, latency_ms=150)]
    calls, revoked, invalid = zoom.calls(REVOKE), revokes("revoked"), revokes("invalid")
    await make_due(pool)

    claimed = await asyncio.gather(
        run_pass(first.revokes, batch=2), run_pass(second.revokes, batch=2)
    )

    assert sum(claimed) == len(users)
    assert zoom.calls(REVOKE) == calls + len(users)  # each row once, never by both
    assert revokes("revoked") == revoked + len(users)
    assert revokes("invalid") == invalid
    for user in users:
        assert await owed(pool, user) == []


async def test_rotate_key_reseals_pending_revokes(
    pool: AsyncConnectionPool,
    keys: KeyRing,
    key_spec: str,
    http: httpx.AsyncClient,
    zoom: ZoomEmulator,
) -> None:
    old_store = TokenStore(pool, keys, make_oauth(http, zoom), revoke_schedule=FAST)
    await connect_new_user(old_store, zoom, "u-rekey")
    grant = await old_store.get_access_token("u-rekey")
    fail_revokes(zoom, attempts=1)
    await old_store.disconnect("u-rekey")
    zoom.faults = []
    (before,) = await owed(pool, "u-rekey")
    assert before["key_id"] == "k1"

    spec = f"k2:{generate_key()}"
    both = KeyRing.parse(f"{spec},{key_spec}")
    await TokenStore(pool, both, make_oauth(http, zoom), revoke_schedule=FAST).rotate_key()
    (after,) = await owed(pool, "u-rekey")
    assert after["key_id"] == "k2" and after["refresh_token"] != before["refresh_token"]

    only_k2 = TokenStore(pool, KeyRing.parse(spec), make_oauth(http, zoom), revoke_schedule=FAST)
    await make_due(pool, "u-rekey")
    await run_pass(only_k2.revokes)
    assert await owed(pool, "u-rekey") == []
    assert not await accepted(http, zoom, [grant.access_token])
    # Back under k1, for whatever runs next on this module's database.
    back = KeyRing.parse(f"{key_spec},{spec}")
    await TokenStore(pool, back, make_oauth(http, zoom)).rotate_key()
