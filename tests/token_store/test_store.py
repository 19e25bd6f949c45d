"""TokenStore against real Postgres and the Zoom emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from devservices.zoom_emulator import Fault, ZoomEmulator
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from token_store import (
    AccountInactive,
    AuthorizationExpired,
    KeyRing,
    NotConnected,
    OAuthRejected,
    TokenServiceUnavailable,
    TokenStore,
    TokenUnreadable,
    ZoomOAuth,
)

from .conftest import REDIRECT_URI, connect_new_user, make_oauth

TOKEN = "POST /oauth/token"
REVOKE = "POST /oauth/revoke"


@pytest.fixture(autouse=True)
def clean_emulator(zoom: ZoomEmulator) -> None:
    zoom.faults = []


async def expire_stored(pool: AsyncConnectionPool, user_id: str) -> None:
    """Make the stored access token due for refresh (inside the 5 minute margin)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE zoom_tokens SET access_expires_at = now() + interval '1 minute'"
            " WHERE user_id = %s",
            (user_id,),
        )


async def raw_row(pool: AsyncConnectionPool, user_id: str) -> tuple[bytes, bytes, str] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT access_token, refresh_token, key_id FROM zoom_tokens WHERE user_id = %s",
            (user_id,),
        )
        return await cur.fetchone()


async def zoom_accepts(http: httpx.AsyncClient, zoom: ZoomEmulator, access_token: str) -> bool:
    response = await http.get(
        f"{zoom.api_base_url}/users/me", headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code == 200


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- connect, status, get -------------------------------------------------------------------


async def test_connect_stores_encrypted_tokens_and_status_shows_none(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    connected = await connect_new_user(store, zoom, "u-connect")
    assert connected.status.zoom_user_id == connected.zoom_user.id
    assert connected.status.zoom_account_id == connected.zoom_user.account_id
    assert connected.status.key_id == "k1" and connected.status.scopes

    grant = await store.get_access_token("u-connect")
    assert await zoom_accepts(http, zoom, grant.access_token)
    assert grant.access_token not in repr(grant)
    raw = await raw_row(pool, "u-connect")
    assert raw is not None
    assert grant.access_token.encode() not in raw[0]
    assert all(s.encode() not in raw[0] + raw[1] for s in zoom.issued_secrets())
    status = await store.status("u-connect")
    assert status is not None
    assert all(s not in repr(status) for s in zoom.issued_secrets())


async def test_no_connection_is_not_connected(store: TokenStore) -> None:
    with pytest.raises(NotConnected) as caught:
        await store.get_access_token("u-nobody")
    assert caught.value.reason == "zoom_not_connected" and not caught.value.retryable
    assert await store.status("u-nobody") is None


async def test_a_fresh_token_is_returned_without_calling_zoom(
    store: TokenStore, zoom: ZoomEmulator
) -> None:
    await connect_new_user(store, zoom, "u-fresh")
    before = zoom.calls(TOKEN)
    first = await store.get_access_token("u-fresh")
    second = await store.get_access_token("u-fresh")
    assert first.access_token == second.access_token
    assert zoom.calls(TOKEN) == before


async def test_a_token_expiring_within_the_margin_is_refreshed_and_stored(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    await connect_new_user(store, zoom, "u-refresh")
    old = await store.get_access_token("u-refresh")
    await expire_stored(pool, "u-refresh")
    before = zoom.calls(TOKEN)

    new = await store.get_access_token("u-refresh")

    assert zoom.calls(TOKEN) == before + 1
    assert new.access_token != old.access_token
    assert new.expires_at > datetime.now(UTC) + timedelta(minutes=50)
    assert await zoom_accepts(http, zoom, new.access_token)
    assert (await store.get_access_token("u-refresh")).access_token == new.access_token
    status = await store.status("u-refresh")
    assert status is not None and status.refreshed_at is not None


async def test_twenty_coroutines_cause_one_refresh(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    await connect_new_user(store, zoom, "u-twenty")
    await expire_stored(pool, "u-twenty")
    zoom.faults = [Fault(kind="latency", endpoint=TOKEN, latency_ms=100)]
    before = zoom.calls(TOKEN)

    grants = await asyncio.gather(*(store.get_access_token("u-twenty") for _ in range(20)))

    assert zoom.calls(TOKEN) == before + 1
    assert len({g.access_token for g in grants}) == 1


async def test_a_rejected_token_is_refreshed_once_for_all_who_saw_it(
    store: TokenStore, zoom: ZoomEmulator, http: httpx.AsyncClient
) -> None:
    connected = await connect_new_user(store, zoom, "u-rejected")
    stale = await store.get_access_token("u-rejected")
    zoom.expire_access_tokens(connected.zoom_user.id)
    assert not await zoom_accepts(http, zoom, stale.access_token)
    before = zoom.calls(TOKEN)

    fresh = await asyncio.gather(
        *(store.refresh_after_rejection("u-rejected", stale) for _ in range(5))
    )
    again = await store.refresh_after_rejection("u-rejected", stale)

    assert zoom.calls(TOKEN) == before + 1  # the later caller sees someone already refreshed
    assert {g.access_token for g in [*fresh, again]} == {fresh[0].access_token}
    assert await zoom_accepts(http, zoom, again.access_token)


# -- Zoom refusing ----------------------------------------------------------------------------


async def test_a_revoked_grant_expires_the_connection_after_one_retry(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    await connect_new_user(store, zoom, "u-revoked")
    grant = await store.get_access_token("u-revoked")
    await make_oauth(http, zoom).revoke(grant.access_token)  # e.g. removed in Zoom's marketplace
    await expire_stored(pool, "u-revoked")
    before = zoom.calls(TOKEN)
    expired_before = counter("zoom_token_refreshes_total", outcome="expired")

    with pytest.raises(AuthorizationExpired) as caught:
        await store.get_access_token("u-revoked")

    assert type(caught.value) is AuthorizationExpired
    assert caught.value.reason == "zoom_authorization_expired"
    assert zoom.calls(TOKEN) == before + 2
    assert await raw_row(pool, "u-revoked") is None
    assert counter("zoom_token_refreshes_total", outcome="expired") == expired_before + 1
    with pytest.raises(NotConnected):
        await store.get_access_token("u-revoked")


async def test_a_lost_refresh_answer_is_retried_then_expires(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    """Zoom rotated the pair but the answer was dropped: the old refresh token is dead.
    The store retries (transport), meets invalid_grant, re-reads and retries once more, and
    only then deletes the tokens."""
    await connect_new_user(store, zoom, "u-lost")
    await expire_stored(pool, "u-lost")
    zoom.faults = [Fault(kind="drop", when="after", endpoint=TOKEN, count=1)]
    before = zoom.calls(TOKEN)

    with pytest.raises(AuthorizationExpired):
        await store.get_access_token("u-lost")

    assert zoom.faults.fired() == [1]
    # 1 lost + 1 transport retry (invalid_grant) + 1 after the re-read (invalid_grant)
    assert zoom.calls(TOKEN) == before + 3
    assert await raw_row(pool, "u-lost") is None


async def test_zoom_oauth_down_keeps_a_still_valid_token_and_is_retryable_otherwise(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    await connect_new_user(store, zoom, "u-down")
    current = await store.get_access_token("u-down")
    await expire_stored(pool, "u-down")  # due for refresh, still valid for a minute
    zoom.faults = [Fault(kind="error", endpoint=TOKEN, status=503)]

    kept = await store.get_access_token("u-down")
    assert kept.access_token == current.access_token

    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE zoom_tokens SET access_expires_at = now() WHERE user_id = 'u-down'"
        )
    with pytest.raises(TokenServiceUnavailable) as caught:
        await store.get_access_token("u-down")
    assert caught.value.retryable and caught.value.reason == "zoom_unavailable"
    assert await raw_row(pool, "u-down") is not None  # an outage never deletes tokens


async def test_wrong_client_credentials_never_delete_tokens(
    store: TokenStore,
    zoom: ZoomEmulator,
    pool: AsyncConnectionPool,
    keys: KeyRing,
    http: httpx.AsyncClient,
) -> None:
    await connect_new_user(store, zoom, "u-misconfigured")
    await expire_stored(pool, "u-misconfigured")
    wrong = ZoomOAuth(http, zoom.oauth_base_url, zoom.api_base_url, "emu-client", "not-it")
    with pytest.raises(OAuthRejected) as caught:
        await TokenStore(pool, keys, wrong).get_access_token("u-misconfigured")
    assert "invalid_client" in str(caught.value) and "not-it" not in str(caught.value)
    assert await raw_row(pool, "u-misconfigured") is not None
    assert (await store.get_access_token("u-misconfigured")).user_id == "u-misconfigured"


async def test_an_inactive_zoom_user_cannot_connect(store: TokenStore, zoom: ZoomEmulator) -> None:
    user = zoom.add_user("inactive@example.com", status="inactive")
    code = zoom.authorize(user.id, redirect_uri=REDIRECT_URI)
    with pytest.raises(AccountInactive) as caught:
        await store.connect("u-inactive", code, None, REDIRECT_URI)
    assert caught.value.reason == "zoom_account_inactive"
    assert await store.status("u-inactive") is None


async def test_a_used_code_is_refused_as_expired(store: TokenStore, zoom: ZoomEmulator) -> None:
    user = zoom.add_user("twice@example.com")
    code = zoom.authorize(user.id, redirect_uri=REDIRECT_URI)
    await store.connect("u-twice", code, None, REDIRECT_URI)
    with pytest.raises(AuthorizationExpired) as caught:
        await store.connect("u-twice", code, None, REDIRECT_URI)
    assert code not in str(caught.value)
    assert await store.status("u-twice") is not None  # the first connection stays


# -- reconnect and disconnect ----------------------------------------------------------------


async def test_reconnecting_another_zoom_user_replaces_and_revokes_the_old_grant(
    store: TokenStore, zoom: ZoomEmulator, http: httpx.AsyncClient
) -> None:
    first = await connect_new_user(store, zoom, "u-reconnect")
    old = await store.get_access_token("u-reconnect")
    second = await connect_new_user(store, zoom, "u-reconnect")

    new = await store.get_access_token("u-reconnect")
    assert new.zoom_user_id == second.zoom_user.id != first.zoom_user.id
    assert not await zoom_accepts(http, zoom, old.access_token)  # revoked
    assert await zoom_accepts(http, zoom, new.access_token)


async def test_reconnecting_the_same_zoom_user_keeps_the_new_grant_working(
    store: TokenStore, zoom: ZoomEmulator, http: httpx.AsyncClient
) -> None:
    connected = await connect_new_user(store, zoom, "u-same")
    code = zoom.authorize(connected.zoom_user.id, redirect_uri=REDIRECT_URI)
    await store.connect("u-same", code, None, REDIRECT_URI)
    assert await zoom_accepts(http, zoom, (await store.get_access_token("u-same")).access_token)


async def test_disconnect_deletes_and_revokes(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient
) -> None:
    await connect_new_user(store, zoom, "u-bye")
    grant = await store.get_access_token("u-bye")
    before = zoom.calls(REVOKE)

    assert await store.disconnect("u-bye") is True

    assert zoom.calls(REVOKE) == before + 1
    assert await raw_row(pool, "u-bye") is None
    assert not await zoom_accepts(http, zoom, grant.access_token)
    assert await store.disconnect("u-bye") is False
    with pytest.raises(NotConnected):
        await store.get_access_token("u-bye")


async def test_disconnect_deletes_even_when_revoke_keeps_failing(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    await connect_new_user(store, zoom, "u-stubborn")
    zoom.faults = [Fault(kind="error", endpoint=REVOKE, status=503)]
    failures = counter("zoom_token_revoke_failures_total")
    before = zoom.calls(REVOKE)

    assert await store.disconnect("u-stubborn") is True

    assert zoom.calls(REVOKE) == before + 3  # retried
    assert counter("zoom_token_revoke_failures_total") == failures + 1
    assert await raw_row(pool, "u-stubborn") is None
    with pytest.raises(NotConnected) as caught:  # a later event for that user
        await store.get_access_token("u-stubborn")
    assert caught.value.reason == "zoom_not_connected"


async def test_deauthorized_zoom_user_loses_every_connection(
    store: TokenStore, zoom: ZoomEmulator
) -> None:
    connected = await connect_new_user(store, zoom, "u-deauth")
    assert await store.disconnect_zoom_user(connected.zoom_user.id) == 1
    assert await store.disconnect_zoom_user(connected.zoom_user.id) == 0
    with pytest.raises(NotConnected):
        await store.get_access_token("u-deauth")


# -- stored ciphertext -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kid"),
    [
        ("UPDATE zoom_tokens SET access_token = access_token || '\\x00'::bytea", "k1"),
        ("UPDATE zoom_tokens SET access_token = refresh_token", "k1"),
        ("UPDATE zoom_tokens SET key_id = 'k-gone'", "k-gone"),
    ],
    ids=["tampered", "swapped-columns", "unknown-key-id"],
)
async def test_unreadable_rows_fail_cleanly_naming_the_key_id(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool, sql: str, kid: str
) -> None:
    user_id = f"u-bad-{kid}-{len(sql)}"
    await connect_new_user(store, zoom, user_id)
    async with pool.connection() as conn:
        await conn.execute(f"{sql} WHERE user_id = %s", (user_id,))
    with pytest.raises(TokenUnreadable) as caught:
        await store.get_access_token(user_id)
    assert caught.value.kid == kid and repr(kid) in str(caught.value)
    assert all(s not in str(caught.value) for s in zoom.issued_secrets())
    assert await raw_row(pool, user_id) is not None  # kept for an operator to look at


async def test_rows_swapped_between_users_do_not_decrypt(
    store: TokenStore, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    await connect_new_user(store, zoom, "u-swap-a")
    await connect_new_user(store, zoom, "u-swap-b")
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE zoom_tokens SET access_token ="
            " (SELECT access_token FROM zoom_tokens WHERE user_id = 'u-swap-b')"
            " WHERE user_id = 'u-swap-a'"
        )
    with pytest.raises(TokenUnreadable):
        await store.get_access_token("u-swap-a")
    assert (await store.get_access_token("u-swap-b")).user_id == "u-swap-b"
