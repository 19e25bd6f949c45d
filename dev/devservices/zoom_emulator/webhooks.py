"""Zoom's webhook requests, signed as Zoom signs them.

``x-zm-request-timestamp`` is Unix seconds; ``x-zm-signature`` is ``v0=`` + hex
HMAC-SHA256(secret token, ``v0:{timestamp}:{raw body}``). ``endpoint.url_validation`` carries a
``plainToken`` the endpoint must answer with ``encryptedToken`` = hex HMAC-SHA256(secret token,
plainToken).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx


def sign(secret_token: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def encrypted_token(secret_token: str, plain_token: str) -> str:
    return hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def webhook_request(
    event: str,
    payload: dict[str, Any],
    secret_token: str,
    *,
    timestamp: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Zoom would send for ``event`` at ``timestamp`` (default now)."""
    ts = int(time.time() if timestamp is None else timestamp)
    body = json.dumps(
        {"event": event, "event_ts": ts * 1000, "payload": payload}, separators=(",", ":")
    ).encode()
    headers = {
        "content-type": "application/json",
        "x-zm-request-timestamp": str(ts),
        "x-zm-signature": sign(secret_token, str(ts), body),
        "user-agent": "Zoom Marketplace/1.0a",
    }
    return body, headers


async def send_webhook(
    url: str,
    event: str,
    payload: dict[str, Any],
    secret_token: str,
    *,
    timestamp: float | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST a signed webhook to ``url`` and return the answer (no retries)."""
    body, headers = webhook_request(event, payload, secret_token, timestamp=timestamp)
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    async with httpx.AsyncClient(timeout=5) as own:
        return await own.post(url, content=body, headers=headers)


async def validate_endpoint(url: str, secret_token: str) -> bool:
    """Zoom's URL validation: True when the endpoint proves it holds the secret token."""
    plain = secrets.token_urlsafe(16)
    response = await send_webhook(
        url, "endpoint.url_validation", {"plainToken": plain}, secret_token
    )
    if response.status_code != 200:
        return False
    answer = response.json()
    return bool(
        answer.get("plainToken") == plain
        and hmac.compare_digest(
            str(answer.get("encryptedToken", "")), encrypted_token(secret_token, plain)
        )
    )
