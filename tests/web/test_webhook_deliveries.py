"""POST /zoom/webhook acts on each signed delivery once, and a deauthorization never undoes a
connection made after it. Real HTTP, Postgres and the Zoom emulator."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import structlog
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.browser import consent
from devservices.zoom_emulator.webhooks import webhook_request
from psycopg_pool import AsyncConnectionPool

from connect.app import WebConfig, create_app
from connect.deliveries import DeliveryLog
from connect.return_urls import ReturnUrlAllowlist
from connect.state import StateStore
from connect.webhook import WebhookEvent
from tests.web.conftest import ALLOWLIST, TICKET_SECRET, WEBHOOK_SECRET, Served
from token_store import ConnectionStatus, Deauthorized, TokenStore

JSON = {"accept": "application/json"}


async def _connect(browser: httpx.AsyncClient, app: Served, user: str, zoom_login: str) -> None:
    start = await browser.get("/zoom/connect", params={"ticket": app.ticket(user)})
    callback = await consent(browser, start.headers["location"], zoom_login)
    done = await browser.get(callback)
    assert "zoom=connected" in done.headers["location"]


def _deauthorization(zoom_user_id: str, at: datetime) -> dict[str, str]:
    return {
        "account_id": "acc", "user_id": zoom_user_id, "signature": "sig",
        "deauthorization_time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "client_id": "emu-client", "user_data_retention": "false",
    }  # fmt: skip


def _signed(
    zoom_user_id: str, at: datetime, *, timestamp: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """An ``app_deauthorized`` delivery as Zoom signs it (at ``timestamp``, default now)."""
    payload = _deauthorization(zoom_user_id, at)
    return webhook_request("app_deauthorized", payload, WEBHOOK_SECRET, timestamp=timestamp)


async def _post(
    browser: httpx.AsyncClient, delivery: tuple[bytes, dict[str, str]]
) -> httpx.Response:
    body, headers = delivery
    return await browser.post("/zoom/webhook", content=body, headers=headers | JSON)


async def test_a_replayed_deauthorization_is_acknowledged_and_changes_nothing(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    # Zoom's clock two minutes ahead of ours: the deauthorization time alone would not protect
    # the connection made after the first delivery; only remembering the delivery does.
    zoom_user = zoom.add_user("replayed-deauth@example.com")
    await _connect(browser, app, "talivo-replayed", zoom_user.email)
    ahead = datetime.now(UTC) + timedelta(minutes=2)
    delivery = _signed(zoom_user.id, ahead)
    first = await _post(browser, delivery)
    assert first.json() == {"status": "ok", "deleted": 1, "kept": 0}

    await _connect(browser, app, "talivo-replayed", zoom_user.email)  # the user comes back
    replay = await _post(browser, delivery)
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
    assert await app.store.status("talivo-replayed") is not None

    # What Zoom signs anew (another timestamp) is another delivery, and is acted on.
    resigned = _signed(zoom_user.id, ahead, timestamp=app.clock() - 1)
    assert (await _post(browser, resigned)).json()["deleted"] == 1
    assert await app.store.status("talivo-replayed") is None


async def test_duplicates_racing_each_other_act_once(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("racing-deauth@example.com")
    await _connect(browser, app, "talivo-racing", zoom_user.email)
    delivery = _signed(zoom_user.id, datetime.now(UTC))
    answers = await asyncio.gather(*(_post(browser, delivery) for _ in range(6)))
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["duplicate"] * 5 + ["ok"]


async def test_a_deauthorization_older_than_the_connection_keeps_it(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    # The user removed the app, then connected again; Zoom's webhook for the removal arrives
    # (or is retried) after the new connection.
    zoom_user = zoom.add_user("late-deauth@example.com")
    await _connect(browser, app, "talivo-late", zoom_user.email)
    removed = datetime.now(UTC) - timedelta(seconds=30)
    late = _signed(zoom_user.id, removed)
    answer = await _post(browser, late)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "deleted": 0, "kept": 1}
    assert await app.store.status("talivo-late") is not None

    now = _signed(zoom_user.id, datetime.now(UTC) + timedelta(seconds=1))
    assert (await _post(browser, now)).json() == {"status": "ok", "deleted": 1, "kept": 0}
    assert await app.store.status("talivo-late") is None


async def test_deauthorize_compares_with_the_stored_connection_time(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("boundary-deauth@example.com")
    await _connect(browser, app, "talivo-boundary", zoom_user.email)
    status = await app.store.status("talivo-boundary")
    assert status is not None
    just_before = status.connected_at - timedelta(microseconds=1)
    with structlog.testing.capture_logs() as logs:
        assert await app.store.deauthorize(zoom_user.id, just_before) == Deauthorized(0, 1)
    kept = [e for e in logs if e["event"] == "zoom_token.deauthorization_predates_connection"]
    assert kept and kept[0]["zoom_user_id"] == zoom_user.id and kept[0]["log_level"] == "warning"
    # Another timezone, same instant: still the connection time itself, which deletes.
    same_instant = status.connected_at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert await app.store.deauthorize(zoom_user.id, same_instant) == Deauthorized(1, 0)


class _FailsOnce:
    """The real token store, whose first ``deauthorize`` fails (the database went away)."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.failed = False

    async def connect(
        self, user_id: str, code: str, code_verifier: str | None, redirect_uri: str
    ) -> ConnectionStatus:
        return await self.store.connect(user_id, code, code_verifier, redirect_uri)

    async def disconnect(self, user_id: str) -> bool:
        return await self.store.disconnect(user_id)

    async def deauthorize(self, zoom_user_id: str, deauthorized_at: datetime) -> Deauthorized:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database gone")
        return await self.store.deauthorize(zoom_user_id, deauthorized_at)


async def test_a_delivery_whose_action_failed_is_acted_on_when_zoom_retries_it(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> None:
    zoom_user = zoom.add_user("retried-deauth@example.com")
    await _connect(browser, app, "talivo-retried", zoom_user.email)
    config = WebConfig(
        ticket_secret=TICKET_SECRET,
        webhook_secret=WEBHOOK_SECRET.encode(),
        allowlist=ReturnUrlAllowlist.parse(ALLOWLIST),
        redirect_uri=app.redirect_uri,
        client_id="emu-client",
        oauth_base_url=zoom.oauth_base_url,
    )
    failing = create_app(config, _FailsOnce(app.store), StateStore(pool), DeliveryLog(pool))
    transport = httpx.ASGITransport(app=failing, raise_app_exceptions=False)
    delivery = _signed(zoom_user.id, datetime.now(UTC))
    async with httpx.AsyncClient(transport=transport, base_url="http://connect") as client:
        assert (await _post(client, delivery)).status_code == 500
        assert await app.store.status("talivo-retried") is not None
        retried = await _post(client, delivery)
    assert retried.json() == {"status": "ok", "deleted": 1, "kept": 0}
    assert await app.store.status("talivo-retried") is None


def _event(signed_at: int, body: str) -> WebhookEvent:
    return WebhookEvent("app_deauthorized", {}, f"{signed_at}-{body}".ljust(64, "0"), signed_at)


async def _remembered(pool: AsyncConnectionPool, event: WebhookEvent) -> bool:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM zoom_webhook_deliveries WHERE delivery_sha256 = %s",
            (event.delivery_id,),
        )
        return await cursor.fetchone() is not None


async def test_deliveries_are_remembered_until_their_window_has_passed(
    pool: AsyncConnectionPool,
) -> None:
    log = DeliveryLog(pool)
    signed = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    old = _event(signed, "old")
    at = datetime.fromtimestamp(signed, UTC)
    assert await log.claim(old, at) is True
    # Still inside the window (the timestamp check lets a replay through until +300 s).
    assert await log.claim(_event(signed + 300, "a"), at + timedelta(seconds=300)) is True
    assert await log.claim(old, at + timedelta(seconds=300)) is False
    assert await _remembered(pool, old)
    # Past it, the row is purged by the next claim: a replay would be refused as stale anyway.
    assert await log.claim(_event(signed + 301, "b"), at + timedelta(seconds=301)) is True
    assert not await _remembered(pool, old)


async def test_url_validation_is_answered_every_time(
    app: Served, browser: httpx.AsyncClient
) -> None:
    # It changes nothing, so a repeated challenge (Zoom retrying a lost answer) is answered.
    delivery = webhook_request("endpoint.url_validation", {"plainToken": "abc"}, WEBHOOK_SECRET)
    answers = [(await _post(browser, delivery)).json() for _ in range(2)]
    assert answers[0] == answers[1] and answers[0]["plainToken"] == "abc"


@pytest.mark.parametrize(
    "deauthorization_time",
    [
        pytest.param(None, id="missing"),
        pytest.param("2024-01-01T00:00:00", id="no_utc_offset"),
        pytest.param("yesterday", id="not_a_time"),
        pytest.param(1704067200000, id="a_number"),
    ],
)
async def test_a_deauthorization_without_a_readable_time_is_refused(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator, deauthorization_time: Any
) -> None:
    user = f"talivo-no-time-{uuid.uuid4().hex[:8]}"
    zoom_user = zoom.add_user(f"{user}@example.com")
    await _connect(browser, app, user, zoom_user.email)
    payload: dict[str, Any] = _deauthorization(zoom_user.id, datetime.now(UTC))
    payload["deauthorization_time"] = deauthorization_time
    if deauthorization_time is None:
        del payload["deauthorization_time"]
    answer = await _post(browser, webhook_request("app_deauthorized", payload, WEBHOOK_SECRET))
    assert (answer.status_code, answer.json()["error"]) == (400, "webhook_malformed")
    assert await app.store.status(user) is not None
