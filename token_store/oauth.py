"""Zoom's OAuth endpoints (code exchange, refresh, revoke) and ``GET /users/me``.

Every httpx error and every non-success answer is translated here, into the tree of
``token_store.errors``. Transport errors, timeouts, 429 and 5xx are retried (``attempts``
calls in all) after an exponential backoff with jitter (tenacity); when the last attempt fails
too, ``TokenServiceUnavailable`` says how. A retried refresh whose first answer was lost may
come back as ``InvalidGrant`` because Zoom already rotated the refresh token (the store
handles that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from token_store.errors import (
    AccountInactive,
    InvalidGrant,
    OAuthRejected,
    TokenServiceUnavailable,
)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_BACKOFF_CAP_SECONDS = 5.0


class _Transient(Exception):
    """One attempt's retryable failure: an httpx error (by class name) or a retryable status."""

    def __init__(self, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(error or status)
        self.error = error
        self.status = status

    def final(self, what: str, attempts: int) -> TokenServiceUnavailable:
        if self.status is not None:
            return TokenServiceUnavailable(
                f"{what} answered HTTP {self.status} after {attempts} attempt(s)"
            )
        return TokenServiceUnavailable(f"{what} failed after {attempts} attempt(s): {self.error}")


@dataclass(frozen=True)
class TokenAnswer:
    """A token pair from Zoom's token endpoint."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class ZoomUser:
    """The part of ``GET /users/me`` the store keeps (and ``status``, to refuse inactive)."""

    id: str
    account_id: str
    status: str  # "active", "inactive" or "pending"


class ZoomOAuth:
    """Talks to ``{oauth_base_url}/oauth/*`` and ``{api_base_url}/users/me``.

    The HTTP client is owned by the caller (opened and closed with the app's other resources).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        oauth_base_url: str,
        api_base_url: str,
        client_id: str,
        client_secret: str,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.25,
        timeout_seconds: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._oauth = oauth_base_url.rstrip("/")
        self._api = api_base_url.rstrip("/")
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._sleep = sleep

    async def exchange_code(
        self, code: str, code_verifier: str | None, redirect_uri: str
    ) -> TokenAnswer:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return _token_answer(await self._token_call("/oauth/token", form))

    async def refresh(self, refresh_token: str) -> TokenAnswer:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return _token_answer(await self._token_call("/oauth/token", form))

    async def revoke(self, token: str) -> Literal["revoked", "invalid"]:
        """Revoke the grant behind ``token`` (access or refresh token): ``revoked`` when Zoom
        confirms, ``invalid`` when it no longer knows the token (400 "Invalid Token!": revoked
        already), which is as good. Anything else raises, as every call here does."""
        url = f"{self._oauth}/oauth/revoke"
        response = await self._send("POST", url, data={"token": token}, auth=self._auth)
        if response.status_code == 200:
            return "revoked"
        if response.status_code == 400:
            return "invalid"
        error = _safe_word(str(_json(response).get("error", "")))
        raise OAuthRejected(f"Zoom refused POST /oauth/revoke: HTTP {response.status_code} {error}")

    async def get_me(self, access_token: str) -> ZoomUser:
        response = await self._send(
            "GET",
            f"{self._api}/users/me",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        body = _json(response)
        if response.status_code == 200:
            try:
                return ZoomUser(
                    str(body["id"]), str(body["account_id"]), str(body.get("status", "active"))
                )
            except KeyError:
                raise TokenServiceUnavailable("GET /users/me answered without an id") from None
        code = body.get("code")
        if response.status_code == 401 or code == 124:
            raise InvalidGrant("Zoom refused the new access token at GET /users/me")
        if code in (1001, 2300) or "inactive" in str(body.get("message", "")).lower():
            raise AccountInactive("the Zoom user is deactivated or no longer exists")
        raise OAuthRejected(f"GET /users/me answered HTTP {response.status_code} (code {code})")

    async def _token_call(self, path: str, form: Mapping[str, str]) -> Mapping[str, Any]:
        response = await self._send("POST", f"{self._oauth}{path}", data=form, auth=self._auth)
        body = _json(response)
        if response.status_code == 200:
            return body
        error = str(body.get("error", ""))
        reason = str(body.get("reason", body.get("error_description", "")))
        if _is_inactive(error, reason):
            raise AccountInactive(f"Zoom refused POST {path}: the user is deactivated")
        if error == "invalid_grant":
            raise InvalidGrant(f"Zoom answered invalid_grant at POST {path}")
        # Only Zoom's fixed vocabulary is quoted: the error code, never a form value.
        raise OAuthRejected(
            f"Zoom refused POST {path}: HTTP {response.status_code} {_safe_word(error)}"
        )

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send, retrying httpx errors and ``_RETRY_STATUS`` answers: ``attempts`` in all, the
        n-th retry after ``backoff * 2**(n-1)`` plus up to ``backoff`` of jitter (capped)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(
                initial=self._backoff, max=_BACKOFF_CAP_SECONDS, jitter=self._backoff
            ),
            reraise=True,
            sleep=self._sleep,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return await self._send_once(method, url, kwargs)
        except _Transient as exc:
            raise exc.final(f"{method} {url.split('?', 1)[0]}", attempts) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _send_once(self, method: str, url: str, kwargs: Mapping[str, Any]) -> httpx.Response:
        try:
            response = await self._http.request(method, url, timeout=self._timeout, **kwargs)
        except httpx.HTTPError as exc:
            # The class name only: httpx's message may quote the URL.
            raise _Transient(error=type(exc).__name__) from None
        if response.status_code in _RETRY_STATUS:
            raise _Transient(status=response.status_code)
        return response


def _token_answer(body: Mapping[str, Any]) -> TokenAnswer:
    try:
        return TokenAnswer(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_in=int(body.get("expires_in", 3599)),
            scopes=tuple(str(body.get("scope", "")).split()),
        )
    except (KeyError, ValueError):
        raise TokenServiceUnavailable("Zoom's token answer lacked a token pair") from None


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_inactive(error: str, reason: str) -> bool:
    text = f"{error} {reason}".lower()
    return "deactivat" in text or "inactive" in text or "disabled" in text


def _safe_word(value: str) -> str:
    return value if value.replace("_", "").isalnum() and len(value) <= 40 else "(error)"
