"""The connect flow as a recruiter's browser goes through it: Talivo's link with a ticket, our
``/zoom/connect``, Zoom's consent page (the emulator's form), our callback and back to
Talivo; deny, an expired state, a replayed callback, another browser finishing the flow,
disconnect, and the error pages. Cookies are read as Chromium stored them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import psycopg
from devservices.zoom_emulator import ZoomEmulator

from connect.app import STATE_COOKIE
from tests.browser.conftest import CONNECT_HOST, TALIVO_HOST, ConnectSite, Recruiter

if TYPE_CHECKING:  # playwright may be missing: the fixtures then skip, with the reason
    from playwright.async_api import Cookie, Page, Request

Open = Callable[[], Awaitable[Recruiter]]
Ticket = Callable[..., str]


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _back_at_talivo(url: str) -> bool:
    return urlsplit(url).hostname == TALIVO_HOST


def _tokens(database_url: str, user_id: str) -> list[tuple[str, ...]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT zoom_user_id FROM zoom_tokens WHERE user_id = %s", (user_id,)
        ).fetchall()
    return [tuple(row) for row in rows]


def _age_states(database_url: str, user_id: str) -> None:
    """The user's open connect states as they are past their lifetime (10 minutes)."""
    with psycopg.connect(database_url) as conn:
        aged = conn.execute(
            "UPDATE oauth_states SET expires_at = now() - interval '1 minute'"
            " WHERE user_id = %s AND used_at IS NULL",
            (user_id,),
        ).rowcount
    assert aged == 1


def _state_cookies(cookies: list[Cookie]) -> list[Cookie]:
    return [c for c in cookies if c.get("name") == STATE_COOKIE]


async def _to_consent(page: Page, site: ConnectSite, zoom: ZoomEmulator, ticket: str) -> None:
    """Click Talivo's connect link; the browser ends on Zoom's consent page."""
    response = await page.goto(f"{site.base_url}/zoom/connect?ticket={ticket}")
    assert response is not None and response.status == 200
    assert page.url.startswith(f"{zoom.oauth_base_url}/oauth/authorize?"), page.url
    assert await page.get_by_role("heading").inner_text() == "Zoom emulator"


async def _decide(page: Page, login: str, button: str) -> None:
    """On Zoom's consent page: sign in as ``login``, click ``button``; wait to be back."""
    await page.get_by_label("Signed in as").fill(login)
    await page.get_by_role("button", name=button).click()
    await page.wait_for_url(_back_at_talivo)


async def _status_text(page: Page) -> str:
    return await page.locator("#zoom-status").inner_text()


async def test_allow_connects_with_a_secure_state_cookie_and_comes_back(
    connect_site: ConnectSite,
    ticket: Ticket,
    zoom: ZoomEmulator,
    recruiter: Open,
    database_url: str,
) -> None:
    zoom_user = zoom.add_user("browser-allow@example.com")
    me = await recruiter()
    callbacks: list[Request] = []
    me.page.on("request", lambda r: callbacks.append(r) if "/zoom/callback" in r.url else None)

    await _to_consent(me.page, connect_site, zoom, ticket("talivo-br-allow"))
    body = await me.page.locator("body").inner_text()
    assert "emu-client" in body and "meeting:write" in body
    await me.shot("zoom-consent")

    [cookie] = _state_cookies(await me.context.cookies())
    assert cookie.get("domain") == CONNECT_HOST  # host-only, our connect host
    assert cookie.get("path") == "/zoom/callback"
    assert cookie.get("secure") is True and cookie.get("httpOnly") is True
    assert cookie.get("sameSite") == "Lax"  # Strict would be dropped coming back from Zoom
    assert abs(cookie.get("expires", 0) - (time.time() + 600)) < 30  # Max-Age: the state's 10 min
    assert not _state_cookies(await me.context.cookies(f"{connect_site.base_url}/zoom/connect"))
    assert not _state_cookies(
        await me.context.cookies(f"{connect_site.talivo.base_url}/zoom/callback")
    )
    assert not _state_cookies(await me.context.cookies(f"http://{CONNECT_HOST}/zoom/callback"))

    await _decide(me.page, zoom_user.email, "Allow")
    assert urlsplit(me.page.url).path == "/settings/integrations"
    assert _query(me.page.url) == {"tab": "zoom", "zoom": "connected"}
    assert await _status_text(me.page) == "Zoom connected"
    await me.shot("talivo-connected")

    [callback] = callbacks
    assert callback.is_navigation_request()
    sent = await callback.header_value("cookie") or ""
    assert f"{STATE_COOKIE}={cookie.get('value')}" in sent  # the browser sent it cross-site
    assert not _state_cookies(await me.context.cookies())  # and the callback deleted it
    assert _tokens(database_url, "talivo-br-allow") == [(zoom_user.id,)]


async def test_deny_on_zoom_comes_back_with_access_denied(
    connect_site: ConnectSite,
    ticket: Ticket,
    zoom: ZoomEmulator,
    recruiter: Open,
    database_url: str,
) -> None:
    zoom_user = zoom.add_user("browser-deny@example.com")
    me = await recruiter()
    exchanges = zoom.calls("POST /oauth/token")
    await _to_consent(me.page, connect_site, zoom, ticket("talivo-br-deny"))
    await _decide(me.page, zoom_user.email, "Deny")
    assert _query(me.page.url) == {"tab": "zoom", "zoom": "error", "reason": "access_denied"}
    assert await _status_text(me.page) == "Zoom was not connected: access_denied"
    await me.shot("talivo-denied")
    assert not _state_cookies(await me.context.cookies())
    assert zoom.calls("POST /oauth/token") == exchanges
    assert _tokens(database_url, "talivo-br-deny") == []


async def test_state_expired_while_on_the_consent_page(
    connect_site: ConnectSite,
    ticket: Ticket,
    zoom: ZoomEmulator,
    recruiter: Open,
    database_url: str,
) -> None:
    zoom_user = zoom.add_user("browser-slow@example.com")
    me = await recruiter()
    exchanges = zoom.calls("POST /oauth/token")
    await _to_consent(me.page, connect_site, zoom, ticket("talivo-br-slow"))
    _age_states(database_url, "talivo-br-slow")  # the recruiter left the tab open too long
    await _decide(me.page, zoom_user.email, "Allow")
    assert _query(me.page.url) == {"tab": "zoom", "zoom": "error", "reason": "state_expired"}
    assert await _status_text(me.page) == "Zoom was not connected: state_expired"
    await me.shot("talivo-state-expired")
    assert zoom.calls("POST /oauth/token") == exchanges  # the code was never exchanged
    assert _tokens(database_url, "talivo-br-slow") == []


async def test_replayed_callback_by_back_button_or_reload_is_state_used(
    connect_site: ConnectSite,
    ticket: Ticket,
    zoom: ZoomEmulator,
    recruiter: Open,
    database_url: str,
) -> None:
    zoom_user = zoom.add_user("browser-replay@example.com")
    me = await recruiter()
    callbacks: list[str] = []
    me.page.on("request", lambda r: callbacks.append(r.url) if "/zoom/callback" in r.url else None)
    await _to_consent(me.page, connect_site, zoom, ticket("talivo-br-replay"))
    await _decide(me.page, zoom_user.email, "Allow")
    assert _query(me.page.url)["zoom"] == "connected"
    exchanges = zoom.calls("POST /oauth/token")

    # Back to Zoom's page, and Allow again: a new code with the used state.
    await me.page.go_back()
    assert me.page.url.startswith(f"{zoom.oauth_base_url}/oauth/authorize?")
    await _decide(me.page, zoom_user.email, "Allow")
    assert _query(me.page.url) == {"tab": "zoom", "zoom": "error", "reason": "state_used"}
    await me.shot("talivo-state-used")

    # The first callback's address opened again (a reload, a bookmarked history entry).
    await me.page.goto(callbacks[0])
    assert _back_at_talivo(me.page.url)
    assert _query(me.page.url)["reason"] == "state_used"
    assert zoom.calls("POST /oauth/token") == exchanges  # neither code was exchanged
    assert _tokens(database_url, "talivo-br-replay") == [(zoom_user.id,)]  # still connected


async def test_flow_finished_in_another_browser_is_state_mismatch(
    connect_site: ConnectSite,
    ticket: Ticket,
    zoom: ZoomEmulator,
    recruiter: Open,
    database_url: str,
) -> None:
    # Someone starts a flow for their Talivo user and sends Zoom's page to a victim.
    victim = zoom.add_user("browser-victim@example.com")
    attacker, victims = await recruiter(), await recruiter()
    await _to_consent(attacker.page, connect_site, zoom, ticket("talivo-br-attacker"))
    await victims.page.goto(attacker.page.url)
    await _decide(victims.page, victim.email, "Allow")
    assert _query(victims.page.url)["reason"] == "state_mismatch"
    await victims.shot("talivo-state-mismatch")
    assert _tokens(database_url, "talivo-br-attacker") == []


async def test_disconnect_from_talivo_deletes_the_tokens(
    connect_site: ConnectSite,
    ticket: Ticket,
    zoom: ZoomEmulator,
    recruiter: Open,
    database_url: str,
) -> None:
    zoom_user = zoom.add_user("browser-dc@example.com")
    me = await recruiter()
    connect_site.talivo.disconnect_ticket = ticket("talivo-br-dc", purpose="disconnect")
    await _to_consent(me.page, connect_site, zoom, ticket("talivo-br-dc"))
    await _decide(me.page, zoom_user.email, "Allow")
    assert _tokens(database_url, "talivo-br-dc") == [(zoom_user.id,)]
    talivo_url, revokes = me.page.url, zoom.calls("POST /oauth/revoke")

    async with me.page.expect_response(lambda r: r.url.endswith("/zoom/disconnect")) as done:
        await me.page.get_by_role("button", name="Disconnect Zoom").click()
    response = await done.value
    assert response.status == 204 and response.request.method == "POST"
    assert me.page.url == talivo_url  # a 204 leaves the recruiter on Talivo's page
    assert _tokens(database_url, "talivo-br-dc") == []
    assert zoom.calls("POST /oauth/revoke") == revokes + 1
    await me.shot("talivo-after-disconnect")

    # The same form sent again: the ticket is single use, and the browser shows our page.
    async with me.page.expect_navigation() as navigation:
        await me.page.get_by_role("button", name="Disconnect Zoom").click()
    again = await navigation.value
    assert again is not None and again.status == 409
    assert me.page.url == f"{connect_site.base_url}/zoom/disconnect"
    assert "This link was already used" in await me.page.locator("body").inner_text()
    await me.shot("disconnect-ticket-used")


async def test_error_pages_a_recruiter_may_see(
    connect_site: ConnectSite, ticket: Ticket, zoom: ZoomEmulator, recruiter: Open
) -> None:
    me = await recruiter()
    used = ticket("talivo-br-pages")
    await _to_consent(me.page, connect_site, zoom, used)
    await me.context.clear_cookies()
    pages = {
        "ticket-malformed": (f"/zoom/connect?ticket={'x' * 20}", 400, "This link is not valid"),
        "ticket-used": (f"/zoom/connect?ticket={used}", 409, "This link was already used"),
        "ticket-expired": (
            f"/zoom/connect?ticket={ticket('talivo-br-pages', now=time.time() - 301)}",
            400,
            "This link has expired",
        ),
        "ticket-missing": ("/zoom/connect", 400, "This link has no ticket"),
        "state-unknown": (
            f"/zoom/callback?state={'f' * 43}&code=x",
            400,
            "This sign-in attempt is not known",
        ),
    }
    for name, (path, status, text) in pages.items():
        response = await me.page.goto(f"{connect_site.base_url}{path}")
        assert response is not None
        assert (name, response.status) == (name, status)
        assert (await response.header_value("content-type") or "").startswith("text/html")
        assert (await response.header_value("cache-control")) == "no-store"
        assert me.page.url == f"{connect_site.base_url}{path}"  # no redirect anywhere
        shown = await me.page.locator("body").inner_text()
        assert text in shown, (name, shown)
        assert used.split(".")[-1] not in shown
        await me.shot(name)
    assert not _state_cookies(await me.context.cookies())  # none of these started a flow
