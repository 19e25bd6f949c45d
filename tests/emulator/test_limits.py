"""Zoom's rate limits in the emulator: per-account per-second by category, per-host daily."""

from __future__ import annotations

import httpx
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator

from tests.emulator.conftest import bearer
from tests.emulator.test_meetings import SCHEDULED


def _client(zoom: ZoomEmulator, user: EmulatedUser) -> httpx.Client:
    access, _ = zoom.grant_tokens(user.id)
    return httpx.Client(base_url=zoom.api_base_url, headers=bearer(access), timeout=5)


def test_per_second_limit_is_per_account_and_category(
    zoom: ZoomEmulator, ana: EmulatedUser
) -> None:
    zoom.set_qps("pro", "Light", 3)
    colleague = zoom.add_user("col@example.com", account_id=ana.account_id)
    stranger = zoom.add_user("str@example.com")
    mine, same_account, other_account = (_client(zoom, u) for u in (ana, colleague, stranger))
    assert [mine.get("/users/me").status_code for _ in range(3)] == [200, 200, 200]
    refused = same_account.get("/users/me")
    assert refused.status_code == 429
    assert refused.json()["code"] == 4001
    assert refused.headers["X-RateLimit-Type"] == "QPS"
    assert refused.headers["X-RateLimit-Category"] == "Light"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["Retry-After"] == "1"
    assert other_account.get("/users/me").status_code == 200  # another account's budget
    assert mine.post("/users/me/meetings", json=SCHEDULED).status_code == 201  # Medium


def test_plans_have_zoom_rates(zoom: ZoomEmulator) -> None:
    free = zoom.add_user("free@example.com", plan="free")
    client = _client(zoom, free)
    answers = [client.post("/users/me/meetings", json=SCHEDULED).status_code for _ in range(3)]
    assert answers == [201, 201, 429]  # Free: Medium 2/s


def test_daily_create_update_limit_per_host(zoom: ZoomEmulator, ana: EmulatedUser) -> None:
    client = _client(zoom, ana)
    meeting_id = client.post("/users/me/meetings", json=SCHEDULED).json()["id"]
    zoom.set_daily_used(ana.id, 99)
    assert client.patch(f"/meetings/{meeting_id}", json={"topic": "t"}).status_code == 204
    for refused in (
        client.post("/users/me/meetings", json=SCHEDULED),
        client.patch(f"/meetings/{meeting_id}", json={"topic": "u"}),
    ):
        assert refused.status_code == 429
        assert "daily rate limit (100)" in refused.json()["message"]
        assert "Retry-After" not in refused.headers
        assert "X-RateLimit-Type" not in refused.headers
    # Reads and deletes are not counted by the daily limit.
    assert client.get(f"/meetings/{meeting_id}").status_code == 200
    other = _client(zoom, zoom.add_user("bo@example.com", account_id=ana.account_id))
    assert other.post("/users/me/meetings", json=SCHEDULED).status_code == 201
