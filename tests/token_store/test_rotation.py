"""rotate-key: every row moves to the active key, online and resumable; then old keys can go."""

from __future__ import annotations

import httpx
import pytest
from devservices.zoom_emulator import ZoomEmulator
from psycopg_pool import AsyncConnectionPool

from token_store import KeyRing, TokenStore, TokenUnreadable
from token_store.crypto import generate_key

from .conftest import connect_new_user, make_oauth


async def test_rotation_reencrypts_every_row_and_the_old_key_can_be_dropped(
    zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient, key_spec: str
) -> None:
    oauth = make_oauth(http, zoom)
    old_store = TokenStore(pool, KeyRing.parse(key_spec), oauth)
    users = [f"u-rot-{i:02d}" for i in range(7)]
    tokens = {}
    for user_id in users:
        await connect_new_user(old_store, zoom, user_id)
        tokens[user_id] = (await old_store.get_access_token(user_id)).access_token

    new_spec = f"k2:{generate_key()},{key_spec}"
    both = TokenStore(pool, KeyRing.parse(new_spec), oauth)
    assert await both.rotate_key(batch_size=3) == len(users)
    assert await both.rotate_key(batch_size=3) == 0  # resumable: nothing left

    only_new = TokenStore(pool, KeyRing.parse(new_spec.split(",")[0]), oauth)
    for user_id in users:
        assert (await only_new.get_access_token(user_id)).access_token == tokens[user_id]
        status = await only_new.status(user_id)
        assert status is not None and status.key_id == "k2"


async def test_rotation_skips_unreadable_rows_and_reports_them_at_the_end(
    zoom: ZoomEmulator, pool: AsyncConnectionPool, http: httpx.AsyncClient, key_spec: str
) -> None:
    oauth = make_oauth(http, zoom)
    k1 = TokenStore(pool, KeyRing.parse(key_spec), oauth)
    await connect_new_user(k1, zoom, "u-rr-bad")
    await connect_new_user(k1, zoom, "u-rr-good")
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM zoom_tokens WHERE user_id LIKE 'u-rot-%'")
        await conn.execute("UPDATE zoom_tokens SET key_id = 'k0' WHERE user_id = 'u-rr-bad'")

    k3 = TokenStore(pool, KeyRing.parse(f"k3:{generate_key()},{key_spec}"), oauth)
    with pytest.raises(TokenUnreadable, match=r"re-encrypted 1 .* 1 did not decrypt .*k0") as e:
        await k3.rotate_key(batch_size=1)
    assert e.value.kid == "k0"
    good = await k3.status("u-rr-good")
    assert good is not None and good.key_id == "k3"
