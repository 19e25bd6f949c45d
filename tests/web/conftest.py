"""Fixtures: the emulator, a token store on this module's database, and the connect app served
over a real socket on the test's event loop, with a clock tests can move."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from devservices.zoom_emulator import ZoomEmulator
from psycopg_pool import AsyncConnectionPool

from connect.app import WebConfig, create_app
from connect.deliveries import DeliveryLog
from connect.return_urls import ReturnUrlAllowlist
from connect.state import StateStore
from connect.tickets import Purpose, make_ticket
from tests.output_scan import no_secret_in_output as scan
from token_store import KeyRing, TokenStore, ZoomOAuth
from token_store.crypto import generate_key
from worker.runtime.health import serving

TICKET_SECRET = b"test-ticket-secret-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret-token"
RETURN_URL = "https://app.talivo.test/settings/integrations?tab=zoom"
ALLOWLIST = "https://app.talivo.test/settings/,http://localhost:3000"


class Clock:
    """Real time plus an offset the test may move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass(frozen=True)
class Served:
    base_url: str
    redirect_uri: str
    store: TokenStore
    clock: Clock

    def ticket(
        self,
        user_id: str,
        *,
        purpose: Purpose = "connect",
        return_url: str = RETURN_URL,
        ttl: int = 300,
        now: float | None = None,
    ) -> str:
        issued = self.clock() if now is None else now
        return make_ticket(
            TICKET_SECRET, user_id, return_url, now=issued, ttl_seconds=ttl, purpose=purpose
        )


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id="emu-client", client_secret="emu-secret") as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def no_secret_in_output(zoom: ZoomEmulator, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Logs of every test are scanned for tokens and codes the emulator issued, and ours."""
    with scan(zoom, capfd, also=(WEBHOOK_SECRET, TICKET_SECRET.decode())):
        yield


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.parse(f"k1:{generate_key()}")


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False) as opened:
        yield opened


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
async def served(
    zoom: ZoomEmulator, pool: AsyncConnectionPool, keys: KeyRing
) -> AsyncIterator[Served]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    redirect_uri = f"{base_url}/zoom/callback"
    clock = Clock()
    async with httpx.AsyncClient(timeout=5) as http:
        oauth = ZoomOAuth(
            http, zoom.oauth_base_url, zoom.api_base_url, "emu-client", "emu-secret",
            backoff_seconds=0.01, timeout_seconds=2.0,
        )  # fmt: skip
        store = TokenStore(pool, keys, oauth)
        config = WebConfig(
            ticket_secret=TICKET_SECRET,
            webhook_secret=WEBHOOK_SECRET.encode(),
            allowlist=ReturnUrlAllowlist.parse(ALLOWLIST),
            redirect_uri=redirect_uri,
            client_id="emu-client",
            oauth_base_url=zoom.oauth_base_url,
        )

        async def ready() -> bool:
            async with pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True

        app = create_app(
            config,
            store,
            StateStore(pool),
            DeliveryLog(pool),
            checks={"database": ready},
            clock=clock,
        )
        async with serving(app, port, host="127.0.0.1"):
            yield Served(base_url, redirect_uri, store, clock)


@pytest.fixture
def app(served: Served) -> Served:
    served.clock.offset = 0.0
    return served


@pytest.fixture
async def browser(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """One browser: keeps cookies, never follows redirects by itself."""
    async with httpx.AsyncClient(base_url=served.base_url, timeout=5) as client:
        yield client
