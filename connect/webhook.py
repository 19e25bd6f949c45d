"""Zoom webhook checks, as Zoom documents them (developers.zoom.us changelog "webhook URL
validation" and the Marketplace deauthorization guide).

- ``x-zm-signature`` = ``v0=`` + hex HMAC-SHA256(secret token, ``v0:{timestamp}:{raw body}``),
  compared in constant time; ``x-zm-request-timestamp`` in Unix seconds, at most
  ``MAX_SKEW_SECONDS`` from our clock either way (replayed captures die after 5 minutes, and
  ``deliveries.DeliveryLog`` makes sure one inside those minutes changes nothing).
- Each verified event carries ``delivery_id``, hex SHA-256 of the signed message: the same for
  a replay of one delivery, different for anything Zoom signs anew (another timestamp or body).
  ``event_ts`` is the body's own ``event_ts`` (milliseconds, when the event happened): unlike
  the signing timestamp it stays the same when Zoom retries a delivery.
- ``endpoint.url_validation``: answer ``{"plainToken", "encryptedToken"}`` where
  ``encryptedToken`` = hex HMAC-SHA256(secret token, plainToken).
- ``app_deauthorized``: ``payload.user_id`` is the Zoom user who removed the app, and
  ``payload.deauthorization_time`` when (ISO 8601 with a UTC offset or ``Z``, as in Zoom's
  example ``2019-06-17T13:52:28.632Z``); the payload also carries ``account_id``,
  ``signature``, ``client_id`` and ``user_data_retention``, which we do not need.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connect.errors import SignatureInvalid, TimestampStale, WebhookMalformed

MAX_SKEW_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    payload: dict[str, Any]
    delivery_id: str  # hex SHA-256 of the signed message: equal only for a replay
    signed_at: int  # x-zm-request-timestamp, Unix seconds
    event_ts: int | None = None  # the body's event_ts (Unix ms), when it is a positive integer


@dataclass(frozen=True)
class Deauthorization:
    """An ``app_deauthorized`` payload: who removed the app, and when (timezone-aware)."""

    zoom_user_id: str
    at: datetime


def _signed_message(timestamp: str, body: bytes) -> bytes:
    return b"v0:" + timestamp.encode() + b":" + body


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    message = _signed_message(timestamp, body)
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
    delivery_id = hashlib.sha256(_signed_message(timestamp, body)).hexdigest()
    event_ts = data.get("event_ts")
    if type(event_ts) is not int or not 0 < event_ts < 2**63:
        event_ts = None
    return WebhookEvent(data["event"], payload, delivery_id, int(timestamp), event_ts)


def url_validation_answer(secret: bytes, payload: dict[str, Any]) -> dict[str, str]:
    plain = payload.get("plainToken")
    if not isinstance(plain, str) or not plain or len(plain) > 256:
        raise WebhookMalformed
    encrypted = hmac.new(secret, plain.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain, "encryptedToken": encrypted}


def deauthorization(payload: dict[str, Any]) -> Deauthorization:
    """The ``app_deauthorized`` payload's user and time; ``WebhookMalformed`` when either is
    missing or unreadable (a time without a UTC offset is ambiguous and refused too)."""
    user_id = payload.get("user_id")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 200 or "\x00" in user_id:
        raise WebhookMalformed
    when = payload.get("deauthorization_time")
    if not isinstance(when, str) or not 0 < len(when) <= 64:
        raise WebhookMalformed
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        raise WebhookMalformed from None
    if at.utcoffset() is None:
        raise WebhookMalformed
    return Deauthorization(user_id, at)
