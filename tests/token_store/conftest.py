"""Fixtures: the Zoom emulator, a key ring, a pool on this module's database and a store."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator
from psycopg_pool import AsyncConnectionPool

from tests.output_scan import no_secret_in_output as scan
from token_store import ConnectionStatus, KeyRing, TokenStore, ZoomOAuth
from token_store.crypto import generate_key

REDIRECT_URI = "http://app.test/zoom/callback"
CLIENT_ID = "emu-client"
CLIENT_SECRET = "emu-secret"


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def no_secret_in_output(zoom: ZoomEmulator, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Every test's stdout/stderr (logs included) is scanned for the emulator's secrets."""
    with scan(zoom, capfd):
        yield


@pytest.fixture(scope="module")
def key_spec() -> str:
    return f"k1:{generate_key()}"


@pytest.fixture(scope="module")
def keys(key_spec: str) -> KeyRing:
    return KeyRing.parse(key_spec)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False) as opened:
        yield opened


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_oauth(http: httpx.AsyncClient, zoom: ZoomEmulator, **kwargs: float) -> ZoomOAuth:
    return ZoomOAuth(
        http,
        zoom.oauth_base_url,
        zoom.api_base_url,
        CLIENT_ID,
        CLIENT_SECRET,
        attempts=int(kwargs.get("attempts", 3)),
        backoff_seconds=kwargs.get("backoff_seconds", 0.01),
        timeout_seconds=kwargs.get("timeout_seconds", 2.0),
    )


@pytest.fixture
def store(
    pool: AsyncConnectionPool, keys: KeyRing, http: httpx.AsyncClient, zoom: ZoomEmulator
) -> TokenStore:
    return TokenStore(pool, keys, make_oauth(http, zoom))


@dataclass(frozen=True)
class Connected:
    user_id: str
    zoom_user: EmulatedUser
    status: ConnectionStatus


async def connect_new_user(store: TokenStore, zoom: ZoomEmulator, user_id: str) -> Connected:
    """A fresh Zoom user who clicked Allow, connected to Talivo user ``user_id``."""
    zoom_user = zoom.add_user(f"{user_id}@example.com")
    code = zoom.authorize(zoom_user.id, redirect_uri=REDIRECT_URI)
    status = await store.connect(user_id, code, None, REDIRECT_URI)
    return Connected(user_id, zoom_user, status)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
