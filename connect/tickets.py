"""Connect and disconnect tickets: Talivo's backend vouches for a user for a few minutes.

Format (version 1)::

    v1.<payload>.<signature>

    payload   = base64url(JSON, no padding), compact, keys:
                  "u": the Talivo user id (1-200 characters)
                  "r": the return URL (must be on CONNECT_RETURN_URL_ALLOWLIST)
                  "e": expiry, Unix seconds (at most MAX_TTL_SECONDS ahead)
                  "n": nonce, 16-64 base64url characters, unique per ticket
                  "p": purpose, "connect" or "disconnect"
    signature = base64url(HMAC-SHA256(CONNECT_TICKET_SECRET, "v1." + payload)), no padding

The signature covers the version and the payload exactly as sent (no re-serialisation), and is
compared in constant time before anything in the payload is trusted. Each nonce is accepted
once (see ``state.StateStore``). Make one with ``make_ticket`` or
``zoom-worker connect-ticket --user U --return-url URL --ttl 300``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from connect.errors import (
    TicketBadSignature,
    TicketExpired,
    TicketMalformed,
    TicketMissing,
    TicketWrongPurpose,
)

Purpose = Literal["connect", "disconnect"]
VERSION = "v1"
MAX_TTL_SECONDS = 3600
MAX_TICKET_CHARS = 4096
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class Ticket:
    user_id: str
    return_url: str
    expires_at: int  # Unix seconds
    nonce: str
    purpose: Purpose


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise TicketMalformed
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TicketMalformed from None


def _sign(secret: bytes, payload: str) -> str:
    return _b64encode(hmac.new(secret, f"{VERSION}.{payload}".encode(), hashlib.sha256).digest())


def make_ticket(
    secret: bytes,
    user_id: str,
    return_url: str,
    *,
    now: float,
    ttl_seconds: int = 300,
    purpose: Purpose = "connect",
    nonce: str | None = None,
) -> str:
    """A ticket for ``user_id`` valid ``ttl_seconds`` from ``now`` (Unix seconds)."""
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_SECONDS} seconds")
    body = {
        "u": user_id,
        "r": return_url,
        "e": int(now) + ttl_seconds,
        "n": nonce or secrets.token_urlsafe(18),
        "p": purpose,
    }
    payload = _b64encode(json.dumps(body, separators=(",", ":")).encode())
    return f"{VERSION}.{payload}.{_sign(secret, payload)}"


def read_ticket(secret: bytes, ticket: str | None, *, now: float, purpose: Purpose) -> Ticket:
    """The ticket's contents, once its signature, shape, expiry and purpose check out.

    Raises a ``TicketError`` leaf. Does not check the nonce (single use needs the database) or
    the return URL (the allow list).
    """
    if not ticket:
        raise TicketMissing
    parts = ticket.split(".")
    if len(ticket) > MAX_TICKET_CHARS or len(parts) != 3 or parts[0] != VERSION:
        raise TicketMalformed
    _, payload, signature = parts
    if not hmac.compare_digest(
        _sign(secret, payload).encode(), signature.encode("utf-8", "replace")
    ):
        raise TicketBadSignature
    try:
        body = json.loads(_b64decode(payload))
    except (UnicodeDecodeError, ValueError):
        raise TicketMalformed from None
    found = _parse(body)
    if found.expires_at <= now:
        raise TicketExpired
    if found.expires_at > now + MAX_TTL_SECONDS + 60:  # a minute of clock skew
        raise TicketMalformed
    if found.purpose != purpose:
        raise TicketWrongPurpose
    return found


def _parse(body: object) -> Ticket:
    if not isinstance(body, dict):
        raise TicketMalformed
    user, url, expiry, nonce, purpose = (body.get(k) for k in ("u", "r", "e", "n", "p"))
    if not (isinstance(user, str) and 0 < len(user) <= 200 and user.isprintable()):
        raise TicketMalformed
    if not (isinstance(url, str) and isinstance(expiry, int) and not isinstance(expiry, bool)):
        raise TicketMalformed
    if not (isinstance(nonce, str) and _NONCE.match(nonce)):
        raise TicketMalformed
    if purpose not in ("connect", "disconnect"):
        raise TicketMalformed
    return Ticket(user, url, expiry, nonce, purpose)
