"""The emulator's OAuth matches Zoom's: code exchange with PKCE, rotation, revoke, client auth."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, Fault, ZoomEmulator

from tests.emulator.conftest import CLIENT, bearer

# A dropped connection reads as a closed stream or a reset, depending on timing.
NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError)

INVALID_TOKEN = {"reason": "Invalid Token!", "error": "invalid_grant"}


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post(
        "/oauth/token",
        auth=CLIENT,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
    )


def _me(zoom: ZoomEmulator, access_token: str) -> httpx.Response:
    return httpx.get(f"{zoom.api_base_url}/users/me", headers=bearer(access_token))


def test_code_exchange_answers_like_zoom(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    code = zoom.authorize(ana.id, "http://app/cb")
    answer = http.post(
        "/oauth/token",
        auth=CLIENT,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://app/cb"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3599
    assert _me(zoom, body["access_token"]).json()["id"] == ana.id


def test_params_in_query_string_work_too(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    code = zoom.authorize(ana.id, "http://app/cb")
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://app/cb"}
    assert http.post("/oauth/token", auth=CLIENT, params=params).status_code == 200


@pytest.mark.parametrize(
    ("redirect_uri", "verifier", "reuse"),
    [
        pytest.param("http://other/cb", "v" * 43, False, id="redirect-uri-mismatch"),
        pytest.param("http://app/cb", "w" * 43, False, id="wrong-pkce-verifier"),
        pytest.param("http://app/cb", None, False, id="missing-pkce-verifier"),
        pytest.param("http://app/cb", "v" * 43, True, id="code-used-twice"),
    ],
)
def test_code_exchange_refusals(
    zoom: ZoomEmulator,
    http: httpx.Client,
    ana: EmulatedUser,
    redirect_uri: str,
    verifier: str | None,
    reuse: bool,
) -> None:
    code = zoom.authorize(ana.id, "http://app/cb", code_challenge=_s256("v" * 43))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    if reuse:
        assert http.post("/oauth/token", auth=CLIENT, data=form).status_code == 200
    answer = http.post("/oauth/token", auth=CLIENT, data=form)
    assert answer.status_code == 400
    assert answer.json()["error"] in ("invalid_grant", "invalid_request")


def test_code_expires_after_five_minutes() -> None:
    clock = [datetime(2030, 1, 1, tzinfo=UTC)]
    with ZoomEmulator(now=lambda: clock[0]) as zoom:
        user = zoom.add_user("bo@example.com")
        code = zoom.authorize(user.id, "http://app/cb")
        clock[0] += timedelta(minutes=5, seconds=1)
        answer = httpx.post(
            f"{zoom.oauth_base_url}/oauth/token",
            auth=CLIENT,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://app/cb",
            },
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(("emu-client", "wrong"), id="wrong-secret"),
        pytest.param(("other-client", "emu-secret"), id="wrong-client-id"),
        pytest.param(None, id="no-basic-auth"),
    ],
)
def test_client_credentials_are_checked(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser, auth: tuple[str, str] | None
) -> None:
    _, refresh = zoom.grant_tokens(ana.id)
    answer = http.post(
        "/oauth/token",
        auth=auth if auth else httpx.USE_CLIENT_DEFAULT,
        data={"grant_type": "refresh_token", "refresh_token": refresh},
    )
    assert answer.status_code == 401
    assert answer.json() == {
        "reason": "Invalid client_id or client_secret",
        "error": "invalid_client",
    }


def test_refresh_rotates_and_the_old_refresh_token_dies(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    _, first = zoom.grant_tokens(ana.id)
    rotated = _refresh(http, first)
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first
    reused = _refresh(http, first)
    assert reused.status_code == 400
    assert reused.json() == INVALID_TOKEN
    assert _refresh(http, second).status_code == 200


def test_lost_refresh_answer_still_rotates(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    _, first = zoom.grant_tokens(ana.id)
    zoom.faults = [Fault(kind="drop", when="after", endpoint="POST /oauth/token", count=1)]
    with pytest.raises(NO_ANSWER):
        _refresh(http, first)
    assert _refresh(http, first).json() == INVALID_TOKEN
    assert zoom.calls("POST /oauth/token") == 2


def test_access_tokens_really_expire(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    zoom.access_token_ttl = 1
    access, _ = zoom.grant_tokens(ana.id)
    assert _me(zoom, access).status_code == 200
    zoom.expire_access_tokens(ana.id)
    answer = _me(zoom, access)
    assert answer.status_code == 401
    assert answer.json()["code"] == 124


@pytest.mark.parametrize("which", ["access", "refresh"])
def test_revoke_kills_the_whole_grant(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser, which: str
) -> None:
    access, refresh = zoom.grant_tokens(ana.id)
    answer = http.post(
        "/oauth/revoke", auth=CLIENT, data={"token": access if which == "access" else refresh}
    )
    assert answer.json() == {"status": "success"}
    assert _me(zoom, access).json()["code"] == 124
    assert _refresh(http, refresh).json() == INVALID_TOKEN


def test_revoke_needs_the_client_credentials(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    access, _ = zoom.grant_tokens(ana.id)
    answer = http.post("/oauth/revoke", auth=("emu-client", "nope"), data={"token": access})
    assert answer.status_code == 401
    assert _me(zoom, access).status_code == 200


def test_authorize_redirects_with_code_and_state(
    zoom: ZoomEmulator, http: httpx.Client, ana: EmulatedUser
) -> None:
    answer = http.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT[0],
            "redirect_uri": "http://app/cb",
            "state": "s1",
            "login": ana.email,
        },
    )
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert location.params["state"] == "s1"
    assert location.params["code"] in zoom.issued_secrets()


def test_users_me_and_inactive_users(zoom: ZoomEmulator, ana: EmulatedUser) -> None:
    access, _ = zoom.grant_tokens(ana.id)
    me = _me(zoom, access).json()
    assert {k: me[k] for k in ("id", "account_id", "email", "status", "type")} == {
        "id": ana.id,
        "account_id": ana.account_id,
        "email": ana.email,
        "status": "active",
        "type": 2,
    }
    zoom.set_user_status(ana.id, "inactive")
    answer = _me(zoom, access)
    assert answer.status_code == 404
    assert answer.json()["code"] == 1001


def test_admin_api_drives_the_same_state(zoom: ZoomEmulator, http: httpx.Client) -> None:
    user = http.post("/_emulator/users", json={"email": "cy@example.com"}).json()
    tokens = http.post("/_emulator/grants", json={"user_id": user["id"]}).json()
    assert _me(zoom, tokens["access_token"]).json()["email"] == "cy@example.com"
    assert http.get("/_emulator/calls").json() == {"GET /v2/users/me": 1}
    assert tokens["refresh_token"] in http.get("/_emulator/secrets").json()
    http.post("/_emulator/expire-access-tokens", json={})
    assert _me(zoom, tokens["access_token"]).status_code == 401
