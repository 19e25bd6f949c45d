"""GET /zoom/connect and /zoom/callback over real HTTP, with the emulator as Zoom."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.browser import Decision, consent

from connect.state import s256
from tests.web.conftest import Served

JSON = {"accept": "application/json"}


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _to_zoom(browser: httpx.AsyncClient, ticket: str) -> str:
    response = await browser.get("/zoom/connect", params={"ticket": ticket})
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def _flow(
    browser: httpx.AsyncClient, app: Served, user_id: str, login: str, decision: Decision
) -> tuple[str, str]:
    """Ticket -> Zoom's consent page -> our callback; returns (callback URL, final Location)."""
    authorize = await _to_zoom(browser, app.ticket(user_id))
    callback = await consent(browser, authorize, login, decision)
    response = await browser.get(callback)
    assert response.status_code == 302, response.text
    return callback, response.headers["location"]


def _nonces(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM connect_ticket_nonces").fetchone()
        return int(row[0]) if row else 0


async def test_full_flow_stores_encrypted_tokens(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator, database_url: str
) -> None:
    zoom_user = zoom.add_user("flow@example.com")
    authorize = await _to_zoom(browser, app.ticket("talivo-flow"))
    sent = _query(authorize)
    assert authorize.startswith(f"{zoom.oauth_base_url}/oauth/authorize?")
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["redirect_uri"] == app.redirect_uri and sent["client_id"] == "emu-client"
    assert len(sent["state"]) >= 32

    callback = await consent(browser, authorize, zoom_user.email, "allow")
    response = await browser.get(callback)
    assert response.status_code == 302
    back = response.headers["location"]
    assert back.startswith("https://app.talivo.test/settings/integrations?")
    assert _query(back) == {"tab": "zoom", "zoom": "connected"}

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT zoom_user_id, access_token, refresh_token, key_id FROM zoom_tokens"
            " WHERE user_id = 'talivo-flow'"
        ).fetchone()
    assert row is not None
    zoom_user_id, sealed_access, sealed_refresh, key_id = row
    assert zoom_user_id == zoom_user.id and key_id == "k1"
    for secret in zoom.issued_secrets():
        assert secret.encode() not in bytes(sealed_access) + bytes(sealed_refresh)
    grant = await app.store.get_access_token("talivo-flow")
    assert grant.zoom_user_id == zoom_user.id
    assert grant.access_token in zoom.issued_secrets()


async def test_deny_comes_back_with_access_denied(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("deny@example.com")
    callback, back = await _flow(browser, app, "talivo-deny", zoom_user.email, "deny")
    assert _query(callback)["error"] == "access_denied" and "code" not in _query(callback)
    assert _query(back) == {"tab": "zoom", "zoom": "error", "reason": "access_denied"}
    assert await app.store.status("talivo-deny") is None


async def test_pkce_challenge_matches_the_verifier_zoom_receives(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    # The emulator refuses a code exchanged without the verifier of the challenge it saw, so a
    # connected user proves the pair matched; s256 of a known verifier pins the encoding.
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    zoom_user = zoom.add_user("pkce@example.com")
    _, back = await _flow(browser, app, "talivo-pkce", zoom_user.email, "allow")
    assert _query(back)["zoom"] == "connected"


def _tampered(ticket: str) -> str:
    header, payload, signature = ticket.split(".")  # a JWT
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{header}.{flipped}.{signature}"


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("missing", 400, "ticket_missing"),
        ("garbage", 400, "ticket_malformed"),
        ("tampered", 400, "ticket_invalid"),
        ("other_secret", 400, "ticket_invalid"),
        ("expired", 400, "ticket_expired"),
        ("disconnect_ticket", 400, "ticket_wrong_purpose"),
        ("off_allowlist", 400, "ticket_return_url_refused"),
        ("lookalike_host", 400, "ticket_return_url_refused"),
    ],
)
async def test_bad_tickets_get_a_clear_4xx_and_change_nothing(
    app: Served, browser: httpx.AsyncClient, database_url: str, case: str, status: int, code: str
) -> None:
    from connect.tickets import make_ticket

    good = app.ticket("talivo-bad")
    tickets = {
        "missing": "",
        "garbage": "not-a-ticket",
        "tampered": _tampered(good),
        "other_secret": make_ticket(b"x" * 32, "talivo-bad", "https://app.talivo.test/settings/",
                                    now=app.clock()),
        "expired": app.ticket("talivo-bad", ttl=300, now=app.clock() - 301),
        "disconnect_ticket": app.ticket("talivo-bad", purpose="disconnect"),
        "off_allowlist": app.ticket("talivo-bad", return_url="https://evil.example/steal"),
        "lookalike_host": app.ticket("talivo-bad", return_url="https://app.talivo.test.evil.io/settings/"),
    }  # fmt: skip
    before = _nonces(database_url)
    response = await browser.get("/zoom/connect", params={"ticket": tickets[case]}, headers=JSON)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert "location" not in response.headers
    assert _nonces(database_url) == before


async def test_bad_ticket_page_is_html_for_browsers_and_echoes_nothing(
    app: Served, browser: httpx.AsyncClient
) -> None:
    ticket = _tampered(app.ticket("talivo-html"))
    response = await browser.get(
        "/zoom/connect", params={"ticket": ticket}, headers={"accept": "text/html,*/*"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "This link is not valid" in response.text
    assert ticket.split(".")[1] not in response.text and ticket.split(".")[2] not in response.text


async def test_replayed_ticket_is_refused(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    ticket = app.ticket("talivo-replay")
    await _to_zoom(browser, ticket)
    again = await browser.get("/zoom/connect", params={"ticket": ticket}, headers=JSON)
    assert again.status_code == 409
    assert again.json()["error"] == "ticket_used"


async def test_replayed_state_comes_back_as_state_used(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("replay-state@example.com")
    callback, back = await _flow(browser, app, "talivo-rs", zoom_user.email, "allow")
    assert _query(back)["zoom"] == "connected"
    replay = await browser.get(callback)
    assert replay.status_code == 302
    assert _query(replay.headers["location"])["reason"] == "state_used"


async def test_unknown_or_tampered_state_gets_a_400_page(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("tampered-state@example.com")
    authorize = await _to_zoom(browser, app.ticket("talivo-ts"))
    callback = await consent(browser, authorize, zoom_user.email, "allow")
    state = _query(callback)["state"]
    forged = callback.replace(state, state[:-1] + ("A" if state[-1] != "A" else "B"))
    response = await browser.get(forged, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "state_invalid"
    missing = await browser.get("/zoom/callback", params={"code": "x"}, headers=JSON)
    assert missing.status_code == 400
    assert await app.store.status("talivo-ts") is None


async def test_expired_state_comes_back_as_state_expired(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("slow@example.com")
    authorize = await _to_zoom(browser, app.ticket("talivo-slow"))
    callback = await consent(browser, authorize, zoom_user.email, "allow")
    app.clock.offset = 11 * 60  # the state lives 10 minutes
    response = await browser.get(callback)
    assert _query(response.headers["location"])["reason"] == "state_expired"
    assert await app.store.status("talivo-slow") is None


async def test_state_finished_in_another_browser_is_refused(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    # Someone starts a flow for their Talivo user and sends the Zoom link to a victim.
    victim = zoom.add_user("victim@example.com")
    authorize = await _to_zoom(browser, app.ticket("talivo-attacker"))
    async with httpx.AsyncClient(timeout=5) as victims_browser:
        callback = await consent(victims_browser, authorize, victim.email, "allow")
        response = await victims_browser.get(callback)
    assert _query(response.headers["location"])["reason"] == "state_mismatch"
    assert await app.store.status("talivo-attacker") is None


async def test_failed_exchange_comes_back_with_a_reason(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("inactive@example.com", status="inactive")
    _, back = await _flow(browser, app, "talivo-inactive", zoom_user.email, "allow")
    assert _query(back)["reason"] == "account_inactive"
    assert await app.store.status("talivo-inactive") is None


async def test_a_grant_without_a_needed_permission_comes_back_missing_permissions(
    app: Served, browser: httpx.AsyncClient, zoom: ZoomEmulator
) -> None:
    zoom_user = zoom.add_user("partial@example.com")
    authorize = await _to_zoom(browser, app.ticket("talivo-partial"))
    # On Zoom's page the user leaves "create and manage meetings" unticked.
    narrowed = str(httpx.URL(authorize).copy_merge_params({"scope": "meeting:read user:read"}))
    callback = await consent(browser, narrowed, zoom_user.email, "allow")
    back = (await browser.get(callback)).headers["location"]
    assert _query(back) == {"tab": "zoom", "zoom": "error", "reason": "missing_permissions"}
    assert await app.store.status("talivo-partial") is None
