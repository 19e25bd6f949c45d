"""The emulator's world: accounts, users, OAuth grants, meetings and call counts.

Everything here is plain in-memory state behind one lock, so tests (in their own thread) and
the HTTP server (in the emulator's thread) can both read and change it. Operations that Zoom
would refuse raise :class:`Refusal` carrying the exact status, body and headers Zoom sends.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from devservices.zoom_emulator.limits import RateLimits
from devservices.zoom_emulator.models import (
    AccessToken,
    ApiCall,
    AuthCode,
    EmulatedUser,
    Grant,
    MeetingRecord,
    Plan,
    UserRecord,
    UserStatus,
)
from devservices.zoom_emulator.webhooks import WebhookSender

CODE_TTL = timedelta(minutes=5)
DEFAULT_SCOPES = "meeting:write meeting:read user:read"


class Refusal(Exception):
    """What Zoom answers instead of success."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def zoom_error(status: int, code: int, message: str) -> Refusal:
    return Refusal(status, {"code": code, "message": message})


def oauth_error(status: int, reason: str, error: str) -> Refusal:
    return Refusal(status, {"reason": reason, "error": error})


INVALID_TOKEN = (401, 124, "Invalid access token.")


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class World:
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        wall: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        # The emulator's clock may run ahead (tests of the daily reset at 00:00 UTC).
        self.clock_offset = timedelta(0)
        self.now: Callable[[], datetime] = lambda: wall() + self.clock_offset
        # Zoom's daily-limit 429 "may come without Retry-After or X-RateLimit-Type": off by
        # default; on, it carries both (Retry-After: seconds until 00:00 UTC).
        self.daily_limit_headers = False
        self.lock = threading.RLock()
        self.limits = RateLimits(monotonic)
        self.access_token_ttl = 3599
        # The app's event subscription (kept across reset, like the client id) and its sender.
        self.webhooks = WebhookSender()
        self._last_event_ts = 0
        self._clear()

    def _clear(self) -> None:
        self.accounts: dict[str, Plan] = {}
        self.users: dict[str, UserRecord] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[int, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.meetings: dict[int, MeetingRecord] = {}
        self.calls: Counter[str] = Counter()
        self.journal: list[ApiCall] = []  # every /v2 request that reached a route, in order
        self.secrets: list[str] = []
        self._grant_ids = itertools.count(1)
        self._meeting_ids = itertools.count(81_234_567_890)

    def reset(self) -> None:
        with self.lock:
            self._clear()
            self.webhooks.forget()
            self.access_token_ttl = 3599
            self.limits.reset()
            self.clock_offset = timedelta(0)
            self.daily_limit_headers = False

    def _secret(self, nbytes: int = 32) -> str:
        value = secrets.token_urlsafe(nbytes)
        self.secrets.append(value)
        return value

    # -- users ---------------------------------------------------------------------------

    def add_user(
        self, email: str, plan: Plan, account_id: str | None, status: UserStatus
    ) -> EmulatedUser:
        with self.lock:
            account = account_id or secrets.token_hex(8)
            self.accounts.setdefault(account, plan)
            user = UserRecord(secrets.token_urlsafe(16)[:22], account, email, plan, status)
            self.users[user.id] = user
            return user.public

    def user(self, user_id: str) -> UserRecord:
        with self.lock:
            try:
                return self.users[user_id]
            except KeyError:
                raise KeyError(f"no emulated user {user_id}") from None

    def set_user_status(self, user_id: str, status: UserStatus) -> None:
        with self.lock:
            self.user(user_id).status = status

    # -- OAuth ---------------------------------------------------------------------------

    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        ok = client_id is not None and client_secret is not None
        ok = ok and secrets.compare_digest(str(client_id), self.client_id)
        ok = ok and secrets.compare_digest(str(client_secret), self.client_secret)
        if not ok:
            raise oauth_error(401, "Invalid client_id or client_secret", "invalid_client")

    def authorize(
        self, user_id: str, redirect_uri: str, code_challenge: str | None, scopes: str
    ) -> str:
        with self.lock:
            self.user(user_id)
            code = self._secret(24)
            self.codes[code] = AuthCode(
                code,
                user_id,
                self.client_id,
                redirect_uri,
                code_challenge,
                scopes,
                self.now() + CODE_TTL,
            )
            return code

    def _new_grant(self, user_id: str, scopes: str) -> Grant:
        grant = Grant(next(self._grant_ids), user_id, self.client_id, scopes, self._secret())
        self.grants[grant.id] = grant
        return grant

    def _new_access_token(self, grant: Grant) -> str:
        token = self._secret()
        expires = self.now() + timedelta(seconds=self.access_token_ttl)
        self.access_tokens[token] = AccessToken(grant.id, expires)
        return token

    def _token_answer(self, grant: Grant) -> dict[str, Any]:
        return {
            "access_token": self._new_access_token(grant),
            "token_type": "bearer",
            "refresh_token": grant.refresh_token,
            "expires_in": self.access_token_ttl,
            "scope": grant.scopes,
        }

    def exchange_code(
        self, code: str | None, redirect_uri: str | None, code_verifier: str | None
    ) -> dict[str, Any]:
        with self.lock:
            record = self.codes.get(code or "")
            if record is None or record.used or record.expires_at <= self.now():
                raise oauth_error(400, "Invalid authorization code", "invalid_grant")
            if redirect_uri != record.redirect_uri:
                raise oauth_error(400, "Invalid redirect uri", "invalid_request")
            if record.code_challenge is not None and (
                code_verifier is None
                or not secrets.compare_digest(_s256(code_verifier), record.code_challenge)
            ):
                raise oauth_error(400, "Invalid code_verifier", "invalid_request")
            record.used = True
            return self._token_answer(self._new_grant(record.user_id, record.scopes))

    def refresh(self, refresh_token: str | None) -> dict[str, Any]:
        with self.lock:
            grant = next(
                (
                    g
                    for g in self.grants.values()
                    if not g.revoked
                    and refresh_token
                    and secrets.compare_digest(g.refresh_token, refresh_token)
                ),
                None,
            )
            if grant is None:
                raise oauth_error(400, "Invalid Token!", "invalid_grant")
            grant.refresh_token = self._secret()
            return self._token_answer(grant)

    def grant_tokens(self, user_id: str, scopes: str = DEFAULT_SCOPES) -> tuple[str, str]:
        with self.lock:
            self.user(user_id)
            answer = self._token_answer(self._new_grant(user_id, scopes))
            return answer["access_token"], answer["refresh_token"]

    def revoke(self, token: str | None) -> None:
        """Withdraw the grant behind an access or refresh token. A token of a grant already
        revoked is refused like one never issued: 400 "Invalid Token!"."""
        with self.lock:
            grant_id: int | None = None
            if token and token in self.access_tokens:
                grant_id = self.access_tokens[token].grant_id
            else:
                for grant in self.grants.values():
                    if token and secrets.compare_digest(grant.refresh_token, token):
                        grant_id = grant.id
            if grant_id is None or self.grants[grant_id].revoked:
                raise oauth_error(400, "Invalid Token!", "invalid_request")
            self.grants[grant_id].revoked = True

    def expire_access_tokens(self, user_id: str | None) -> None:
        with self.lock:
            past = self.now() - timedelta(seconds=1)
            for token in self.access_tokens.values():
                if user_id is None or self.grants[token.grant_id].user_id == user_id:
                    token.expires_at = past

    def authenticate(self, authorization: str | None) -> UserRecord:
        """The user behind a bearer token, or Zoom's 124 refusal."""
        scheme, _, token = (authorization or "").partition(" ")
        with self.lock:
            record = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
            if record is None or record.expires_at <= self.now():
                raise zoom_error(*INVALID_TOKEN)
            grant = self.grants[record.grant_id]
            if grant.revoked:
                raise zoom_error(*INVALID_TOKEN)
            return self.users[grant.user_id]

    def issued_secrets(self) -> list[str]:
        with self.lock:
            return list(self.secrets)

    # -- event notifications -------------------------------------------------------------------

    def installed(self, user_id: str) -> bool:
        """Whether ``user_id`` has the app installed (a grant not revoked): Zoom notifies the
        app of its users' events only."""
        with self.lock:
            return any(g.user_id == user_id and not g.revoked for g in self.grants.values())

    def next_event_ts(self) -> int:
        """Now in Unix ms, and later than any event before (two events never share one)."""
        with self.lock:
            now = int(self.now().timestamp() * 1000)
            self._last_event_ts = max(now, self._last_event_ts + 1)
            return self._last_event_ts
