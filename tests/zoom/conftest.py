"""The client against a real emulator over loopback, with a tiny token port of its own.

``EmulatorTokens`` stands in for the token store (built elsewhere): it keeps one grant per
Talivo user and refreshes through the emulator's ``/oauth/token``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator

from token_store.models import ZoomGrant
from worker.zoom import ZoomMeetings

CLIENT = ("emu-client", "emu-secret")


@dataclass
class _Held:
    grant: ZoomGrant
    refresh_token: str


class EmulatorTokens:
    def __init__(self, zoom: ZoomEmulator) -> None:
        self._zoom = zoom
        self._held: dict[str, _Held] = {}
        self.refreshes = 0

    def connect(self, user_id: str, zoom_user: EmulatedUser) -> None:
        access, refresh = self._zoom.grant_tokens(zoom_user.id)
        grant = ZoomGrant(user_id, zoom_user.id, zoom_user.account_id, access, datetime.now(UTC))
        self._held[user_id] = _Held(grant, refresh)

    async def get_access_token(self, user_id: str) -> ZoomGrant:
        return self._held[user_id].grant

    async def refresh_after_rejection(self, user_id: str, rejected: ZoomGrant) -> ZoomGrant:
        held = self._held[user_id]
        if held.grant.access_token != rejected.access_token:
            return held.grant
        self.refreshes += 1
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{self._zoom.oauth_base_url}/oauth/token",
                auth=CLIENT,
                data={"grant_type": "refresh_token", "refresh_token": held.refresh_token},
            )
        answer.raise_for_status()
        body = answer.json()
        expires = datetime.now(UTC) + timedelta(seconds=body["expires_in"])
        held.grant = replace(held.grant, access_token=body["access_token"], expires_at=expires)
        held.refresh_token = body["refresh_token"]
        return held.grant


@pytest.fixture(scope="session")
def zoom_server() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id=CLIENT[0], client_secret=CLIENT[1], seed=11) as zoom:
        yield zoom


@pytest.fixture
def zoom(zoom_server: ZoomEmulator) -> ZoomEmulator:
    zoom_server.reset()
    return zoom_server


@pytest.fixture
def ana(zoom: ZoomEmulator) -> EmulatedUser:
    return zoom.add_user("ana@example.com")


@pytest.fixture
def tokens(zoom: ZoomEmulator, ana: EmulatedUser) -> EmulatorTokens:
    tokens = EmulatorTokens(zoom)
    tokens.connect("talivo-ana", ana)
    return tokens


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def client(zoom: ZoomEmulator, tokens: EmulatorTokens, http: httpx.AsyncClient) -> ZoomMeetings:
    return ZoomMeetings(
        http,
        api_base_url=zoom.api_base_url,
        tokens=tokens,
        retry_budget_seconds=1.5,
        backoff_base_seconds=0.02,
        backoff_cap_seconds=0.2,
        timeout=httpx.Timeout(2.0, connect=1.0),
    )
