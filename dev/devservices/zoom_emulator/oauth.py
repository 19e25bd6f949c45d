"""``/oauth/authorize``, ``/oauth/token`` and ``/oauth/revoke`` as Zoom answers them."""

from __future__ import annotations

import base64
import binascii
import html
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from devservices.zoom_emulator.state import DEFAULT_SCOPES, Refusal, World, oauth_error


async def _params(request: Request) -> dict[str, str]:
    """Zoom takes token parameters in the query string or a form body."""
    params = dict(request.query_params)
    if request.method == "POST":
        # urlencoded bodies parsed here: starlette's form parser needs python-multipart.
        body = (await request.body()).decode("utf-8", errors="replace")
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


def _basic(request: Request) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        client_id, sep, secret = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return (client_id, secret) if sep else (None, None)


def _refused(refusal: Refusal) -> Response:
    return JSONResponse(refusal.body, refusal.status, headers=refusal.headers)


_CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize app - Zoom emulator</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">
<h1>Zoom emulator</h1>
<p>The app <strong>{client_id}</strong> would like to access your Zoom account:</p>
<ul>{scopes}</ul>
<form method="post" action="/oauth/authorize">{hidden}
<p><label>Signed in as <input name="login" type="text" value="{login}" required></label></p>
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form></body></html>
"""


def _consent_page(world: World, params: dict[str, str]) -> Response:
    """Zoom's consent page for a browser: a form that posts the authorize parameters back with
    who is signed in (``login``, filled in when the emulator has one user) and the button."""
    with world.lock:
        emails = [u.email for u in world.users.values()]
    esc = html.escape
    hidden = "".join(
        f'\n<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in params.items()
        if k not in ("login", "decision")
    )
    scopes = "".join(f"<li>{esc(s)}</li>" for s in (params.get("scope") or DEFAULT_SCOPES).split())
    login = params.get("login") or (emails[0] if len(emails) == 1 else "")
    body = _CONSENT_PAGE.format(
        client_id=esc(world.client_id), scopes=scopes, hidden=hidden, login=esc(login)
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def routes(world: World) -> list[Route]:
    async def token(request: Request) -> Response:
        params = await _params(request)
        try:
            world.check_client(*_basic(request))
            grant_type = params.get("grant_type")
            if grant_type == "authorization_code":
                answer = world.exchange_code(
                    params.get("code"), params.get("redirect_uri"), params.get("code_verifier")
                )
            elif grant_type == "refresh_token":
                answer = world.refresh(params.get("refresh_token"))
            else:
                raise oauth_error(400, "Unsupported grant type", "unsupported_grant_type")
        except Refusal as refusal:
            return _refused(refusal)
        return JSONResponse(answer)

    async def revoke(request: Request) -> Response:
        params = await _params(request)
        try:
            world.check_client(*_basic(request))
            world.revoke(params.get("token"))
        except Refusal as refusal:
            return _refused(refusal)
        return JSONResponse({"status": "success"})

    async def authorize(request: Request) -> Response:
        """``login`` (email or user id) names who is signed in, and ``decision`` (``allow``,
        the default, or ``deny``) what they click. Deny sends the browser back with
        ``error=access_denied`` (and the state), as Zoom does.

        Without ``login`` the only user of the emulator is assumed. A browser (``Accept:
        text/html``) that has not decided gets the consent page, whose form posts here.
        """
        q = await _params(request)
        if q.get("response_type") != "code" or q.get("client_id") != world.client_id:
            return PlainTextResponse("Invalid client_id or response_type", 400)
        if "decision" not in q and "text/html" in request.headers.get("accept", ""):
            return _consent_page(world, q)
        redirect_uri = q.get("redirect_uri", "")
        login = q.get("login")
        with world.lock:
            users = [u for u in world.users.values() if login is None or login in (u.id, u.email)]
        if len(users) != 1:
            return PlainTextResponse("Choose a user with login=<email or id>", 400)
        separator = "&" if "?" in redirect_uri else "?"
        if q.get("decision", "allow") == "deny":
            denied = {"error": "access_denied"} | ({"state": q["state"]} if "state" in q else {})
            return RedirectResponse(f"{redirect_uri}{separator}{urlencode(denied)}", 302)
        challenge = q.get("code_challenge")
        if challenge is not None and q.get("code_challenge_method", "plain") != "S256":
            return PlainTextResponse("Only S256 code challenges are supported", 400)
        code = world.authorize(
            users[0].id, redirect_uri, challenge, q.get("scope") or DEFAULT_SCOPES
        )
        query = {"code": code} | ({"state": q["state"]} if "state" in q else {})
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(query)}", 302)

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
        Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
    ]
