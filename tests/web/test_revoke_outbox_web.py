"""The revoke outbox seen from the connect side: a callback whose grant cannot be stored
revokes it at once, and ``zoom-worker serve`` runs the loop that pays revokes Zoom refused
(real Postgres, the Zoom emulator, serve's own start-up)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from devservices.zoom_emulator import Fault, ZoomEmulator
from devservices.zoom_emulator.browser import consent
from psycopg_pool import AsyncConnectionPool

from connect.config import ConnectSettings
from connect.server import serve
from tests.web.conftest import ALLOWLIST, TICKET_SECRET, WEBHOOK_SECRET, Served
from token_store import KeyRing, TokenStore, ZoomOAuth
from token_store.crypto import generate_key
from worker.runtime.config import load_settings

REVOKE = "POST /oauth/revoke"


@pytest.fixture(autouse=True)
def clean_emulator(zoom: ZoomEmulator) -> None:
    zoom.faults = []


@pytest.fixture(scope="module")
async def refusing_database(pool: AsyncConnectionPool) -> None:
    """zoom_tokens refuses Talivo users named ``nostore-*`` (a real Postgres error)."""
    async with pool.connection() as conn:
        await conn.execute(
            """
            CREATE FUNCTION refuse_nostore() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.user_id LIKE 'nostore-%' THEN
                    RAISE EXCEPTION 'refused by the test';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_nostore BEFORE INSERT OR UPDATE ON zoom_tokens
                FOR EACH ROW EXECUTE FUNCTION refuse_nostore();
            """
        )


async def owed(pool: AsyncConnectionPool, user_id: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM zoom_revoke_outbox WHERE user_id = %s", (user_id,)
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def accepted(zoom: ZoomEmulator, tokens: list[str]) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        for token in tokens:
            response = await http.get(
                f"{zoom.api_base_url}/users/me", headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code == 200:
                return True
    return False


@pytest.mark.usefixtures("refusing_database")
async def test_a_callback_whose_grant_cannot_be_stored_revokes_it_at_once(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    zoom_user = zoom.add_user("nostore-web@example.com")
    start = await browser.get("/zoom/connect", params={"ticket": app.ticket("nostore-web")})
    callback = await consent(browser, start.headers["location"], zoom_user.email)
    issued, calls = zoom.issued_secrets(), zoom.calls(REVOKE)

    done = await browser.get(callback)

    assert "zoom=error" in done.headers["location"]
    assert "reason=internal_error" in done.headers["location"]
    assert zoom.calls(REVOKE) == calls + 1
    assert not await accepted(zoom, zoom.issued_secrets()[len(issued) :])
    assert await app.store.status("nostore-web") is None
    assert await owed(pool, "nostore-web") == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving_connect(
    database_url: str, zoom: ZoomEmulator, key_spec: str, metrics_port: int
) -> AsyncIterator[str]:
    """``zoom-worker serve`` on this event loop, as a deployment configures it."""
    port = _free_port()
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEYS": key_spec,
            "ZOOM_CLIENT_ID": "emu-client",
            "ZOOM_CLIENT_SECRET": "emu-secret",
            "ZOOM_API_BASE_URL": zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
            "SERVE_PORT": str(port),
            "SERVE_METRICS_PORT": str(metrics_port),
            "CONNECT_TICKET_SECRET": TICKET_SECRET.decode(),
            "CONNECT_RETURN_URL_ALLOWLIST": ALLOWLIST,
            "ZOOM_WEBHOOK_SECRET_TOKEN": WEBHOOK_SECRET,
            "ZOOM_REDIRECT_URI": f"http://127.0.0.1:{port}/zoom/callback",
        },
        ["database", "keys", "zoom", "serve"],
        ConnectSettings,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0


async def test_serve_runs_the_revoke_loop_and_exports_the_pending_gauge(
    database_url: str, pool: AsyncConnectionPool, zoom: ZoomEmulator
) -> None:
    key_spec = f"k1:{generate_key()}"
    async with httpx.AsyncClient(timeout=5) as http:
        oauth = ZoomOAuth(
            http, zoom.oauth_base_url, zoom.api_base_url, "emu-client", "emu-secret",
            backoff_seconds=0.01, timeout_seconds=2.0,
        )  # fmt: skip
        store = TokenStore(pool, KeyRing.parse(key_spec), oauth)
        zoom_user = zoom.add_user("serve-late@example.com")
        code = zoom.authorize(zoom_user.id, redirect_uri="http://app.test/zoom/callback")
        await store.connect("serve-late", code, None, "http://app.test/zoom/callback")
        grant = await store.get_access_token("serve-late")
        zoom.faults = [Fault(kind="error", endpoint=REVOKE, status=503, count=3)]
        await store.disconnect("serve-late")  # the revoke at once fails: kept
        assert await store.revokes.refresh_pending() == 1
    async with pool.connection() as conn:  # due now rather than in 30 s
        await conn.execute("UPDATE zoom_revoke_outbox SET next_attempt_at = now()")

    metrics_port = _free_port()
    async with serving_connect(database_url, zoom, key_spec, metrics_port):
        metrics = ""
        deadline = time.monotonic() + 20
        while "zoom_token_revokes_pending 0.0" not in metrics:
            assert time.monotonic() < deadline, f"no revoke paid: {await owed(pool, 'serve-late')}"
            await asyncio.sleep(0.05)
            with contextlib.suppress(httpx.TransportError):
                metrics = await _get(f"http://127.0.0.1:{metrics_port}/metrics")

    assert await owed(pool, "serve-late") == 0
    assert not await accepted(zoom, [grant.access_token])
    assert 'zoom_token_revokes_total{outcome="revoked"}' in metrics


async def _get(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(url)).text
