"""One emulator per test session (starting uvicorn costs time), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator

CLIENT = ("emu-client", "emu-secret")


@pytest.fixture(scope="session")
def zoom_server() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id=CLIENT[0], client_secret=CLIENT[1], seed=7) as zoom:
        yield zoom


@pytest.fixture
def zoom(zoom_server: ZoomEmulator) -> ZoomEmulator:
    zoom_server.reset()
    return zoom_server


@pytest.fixture
def http(zoom: ZoomEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=zoom.base_url, timeout=5) as client:
        yield client


@pytest.fixture
def ana(zoom: ZoomEmulator) -> EmulatedUser:
    return zoom.add_user("ana@example.com", plan="pro")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
