"""Zoom webhook checks, as Zoom documents them (see FACTS in docs: "Webhooks").

- ``x-zm-signature`` = ``v0=`` + hex HMAC-SHA256(secret token, ``v0:{timestamp}:{raw body}``),
  compared in constant time; ``x-zm-request-timestamp`` in Unix seconds, at most
  ``MAX_SKEW_SECONDS`` from our clock either way (replayed captures die after 5 minutes).
- ``endpoint.url_validation``: answer ``{"plainToken", "encryptedToken"}`` where
  ``encryptedToken`` = hex HMAC-SHA256(secret token, plainToken).
- ``app_deauthorized``: ``payload.user_id`` is the Zoom user who removed the app.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from connect.errors import SignatureInvalid, TimestampStale, WebhookMalformed

MAX_SKEW_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    payload: dict[str, Any]


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(
    secret: bytes, timestamp: str | None, given: str | None, body: bytes, *, now: float
) -> WebhookEvent:
    """The event, once the timestamp is fresh and the signature matches; else a
    ``WebhookRefused`` leaf. The body is parsed only after the signature checks out."""
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise TimestampStale
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise TimestampStale
    expected = signature(secret, timestamp, body)
    if not given or not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise SignatureInvalid
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookMalformed from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise WebhookMalformed
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise WebhookMalformed
    return WebhookEvent(data["event"], payload)


def url_validation_answer(secret: bytes, payload: dict[str, Any]) -> dict[str, str]:
    plain = payload.get("plainToken")
    if not isinstance(plain, str) or not plain or len(plain) > 256:
        raise WebhookMalformed
    encrypted = hmac.new(secret, plain.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain, "encryptedToken": encrypted}


def deauthorized_user(payload: dict[str, Any]) -> str:
    user_id = payload.get("user_id")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 200 or "\x00" in user_id:
        raise WebhookMalformed
    return user_id
