"""POST /zoom/disconnect and POST /zoom/webhook over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.browser import consent
from devservices.zoom_emulator.webhooks import webhook_request

from schemas.reasons import FailureReason
from tests.web.conftest import WEBHOOK_SECRET, Served
from token_store import NotConnected

JSON = {"accept": "application/json"}


async def _connect(browser: httpx.AsyncClient, app: Served, zoom: ZoomEmulator, user: str) -> str:
    zoom_user = zoom.add_user(f"{user}@example.com")
    start = await browser.get("/zoom/connect", params={"ticket": app.ticket(user)})
    callback = await consent(browser, start.headers["location"], zoom_user.email)
    done = await browser.get(callback)
    assert "zoom=connected" in done.headers["location"]
    return zoom_user.id


async def test_disconnect_deletes_at_once_and_is_idempotent(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    await _connect(browser, app, zoom, "talivo-dc")
    revokes = zoom.calls("POST /oauth/revoke")
    first = await browser.post(
        "/zoom/disconnect", data={"ticket": app.ticket("talivo-dc", purpose="disconnect")}
    )
    assert first.status_code == 204
    assert zoom.calls("POST /oauth/revoke") == revokes + 1
    with pytest.raises(NotConnected) as caught:
        await app.store.get_access_token("talivo-dc")
    assert caught.value.reason is FailureReason.ZOOM_NOT_CONNECTED  # the worker's reason
    bearer = {"authorization": f"Bearer {app.ticket('talivo-dc', purpose='disconnect')}"}
    again = await browser.post("/zoom/disconnect", headers=bearer)
    assert again.status_code == 204


async def test_disconnect_refuses_bad_tickets_and_keeps_the_tokens(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    await _connect(browser, app, zoom, "talivo-dc-bad")
    used = app.ticket("talivo-dc-bad", purpose="disconnect")
    refused = {
        "connect_ticket": (app.ticket("talivo-dc-bad"), 400, "ticket_wrong_purpose"),
        "no_ticket": ("", 400, "ticket_missing"),
        "expired": (
            app.ticket("talivo-dc-bad", purpose="disconnect", now=app.clock() - 400),
            400,
            "ticket_expired",
        ),
    }
    for ticket, status, code in refused.values():
        response = await browser.post("/zoom/disconnect", data={"ticket": ticket}, headers=JSON)
        assert (response.status_code, response.json()["error"]) == (status, code)
    assert await app.store.status("talivo-dc-bad") is not None
    assert (await browser.post("/zoom/disconnect", data={"ticket": used})).status_code == 204
    replay = await browser.post("/zoom/disconnect", data={"ticket": used}, headers=JSON)
    assert (replay.status_code, replay.json()["error"]) == (409, "ticket_used")


async def test_url_validation_challenge(app: Served, zoom: ZoomEmulator) -> None:
    url = f"{app.base_url}/zoom/webhook"
    assert await zoom.validate_webhook_endpoint(url, WEBHOOK_SECRET)
    assert not await zoom.validate_webhook_endpoint(url, "some-other-secret")


async def test_app_deauthorized_deletes_that_zoom_users_tokens(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user_id = await _connect(browser, app, zoom, "talivo-deauth")
    await _connect(browser, app, zoom, "talivo-bystander")
    payload = {
        "account_id": "acc", "user_id": zoom_user_id, "signature": "sig",
        "deauthorization_time": datetime.now(UTC).isoformat(), "client_id": "emu-client",
        "user_data_retention": "false",
    }  # fmt: skip
    url = f"{app.base_url}/zoom/webhook"
    response = await zoom.send_webhook(url, "app_deauthorized", payload, WEBHOOK_SECRET)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "deleted": 1, "kept": 0}
    assert await app.store.status("talivo-deauth") is None
    assert await app.store.status("talivo-bystander") is not None


async def test_unknown_events_are_acknowledged_and_ignored(app: Served, zoom: ZoomEmulator) -> None:
    url = f"{app.base_url}/zoom/webhook"
    response = await zoom.send_webhook(url, "meeting.started", {"object": {}}, WEBHOOK_SECRET)
    assert response.status_code == 200 and response.json() == {"status": "ignored"}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong_secret", "webhook_signature_invalid"),
        ("body_changed", "webhook_signature_invalid"),
        ("no_signature", "webhook_signature_invalid"),
        ("stale_timestamp", "webhook_timestamp_stale"),
        ("future_timestamp", "webhook_timestamp_stale"),
        ("no_timestamp", "webhook_timestamp_stale"),
    ],
)
async def test_unsigned_or_stale_webhooks_are_refused(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator, case: str, code: str
) -> None:
    zoom_user_id = await _connect(browser, app, zoom, f"talivo-wh-{case}")
    payload = {"account_id": "acc", "user_id": zoom_user_id}
    secret = "not-the-secret" if case == "wrong_secret" else WEBHOOK_SECRET
    # Well past the 5 minutes either way: a timestamp is whole seconds, and the time the request
    # takes to arrive counts towards a future one (at +301 s, a loaded machine's second made it
    # fresh, and the unsigned-looking payload then read as malformed: 400).
    at = {"stale_timestamp": app.clock() - 400, "future_timestamp": app.clock() + 400}
    body, headers = webhook_request("app_deauthorized", payload, secret, timestamp=at.get(case))
    if case == "body_changed":
        body = body.replace(b'"acc"', b'"acd"')
    if case == "no_signature":
        del headers["x-zm-signature"]
    if case == "no_timestamp":
        del headers["x-zm-request-timestamp"]
    response = await browser.post("/zoom/webhook", content=body, headers=headers | JSON)
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert await app.store.status(f"talivo-wh-{case}") is not None


async def test_signed_but_malformed_webhook_is_a_400(
    app: Served, browser: httpx.AsyncClient
) -> None:
    body, headers = webhook_request("app_deauthorized", {"user_id": 42}, WEBHOOK_SECRET)
    response = await browser.post("/zoom/webhook", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "webhook_malformed"


async def test_health_and_readiness(app: Served, browser: httpx.AsyncClient) -> None:
    assert (await browser.get("/healthz")).json() == {"status": "ok"}
    ready = await browser.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": True}}
