"""Connect and disconnect tickets: Talivo's backend vouches for a user for a few minutes.

A ticket is a JWT (RFC 7519) signed with HS256 and ``CONNECT_TICKET_SECRET``. Claims, all
required::

    sub         the Talivo user id (1-200 printable characters)
    aud         the purpose: "connect" or "disconnect" (a single string)
    return_url  where the browser goes back to (must be on CONNECT_RETURN_URL_ALLOWLIST)
    iat         issued at, Unix seconds (an integer)
    exp         expiry, Unix seconds (an integer), at most MAX_TTL_SECONDS after iat
    jti         16-64 base64url characters, unique per ticket (accepted once)

Reading pins the algorithm (``algorithms=["HS256"]``: ``none``, other HMACs and public-key
algorithms are refused before any claim is looked at), checks the signature before the payload
is parsed, then the audience (exactly the purpose asked for), then the claims' shapes and times.
The times are checked against the caller's ``now`` (the app's clock) with ``SKEW_SECONDS`` for
clocks that disagree: a ticket issued in the future, one lasting longer than an hour, or one
expiring more than an hour ahead is refused. Each ``jti`` is accepted once (see
``state.StateStore``). Make one with ``make_ticket`` or
``zoom-worker connect-ticket --user U --return-url URL --ttl 300``.

PyJWT's errors are translated here and nowhere else, into ``TicketError`` leaves.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from jwt.types import Options

from connect.errors import (
    TicketBadSignature,
    TicketExpired,
    TicketMalformed,
    TicketMissing,
    TicketWrongPurpose,
)

Purpose = Literal["connect", "disconnect"]
ALGORITHM = "HS256"
MAX_TTL_SECONDS = 3600
SKEW_SECONDS = 60
MAX_TICKET_CHARS = 4096
MIN_SECRET_BYTES = 32  # HS256's key should be as long as its hash; CONNECT_TICKET_SECRET is
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_CLAIMS = ("sub", "aud", "return_url", "iat", "exp", "jti")
# Signature, algorithm, required claims and the audience are PyJWT's to check; the times are
# ours, against the caller's clock (PyJWT reads the system clock itself).
_DECODE_OPTIONS: Options = {
    "require": list(_CLAIMS),
    "strict_aud": True,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True)
class Ticket:
    user_id: str  # sub
    return_url: str
    issued_at: int  # iat, Unix seconds
    expires_at: int  # exp, Unix seconds
    nonce: str  # jti
    purpose: Purpose  # aud


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
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes long")
    issued = int(now)
    claims = {
        "sub": user_id,
        "aud": purpose,
        "return_url": return_url,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": nonce or secrets.token_urlsafe(18),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_ticket(secret: bytes, ticket: str | None, *, now: float, purpose: Purpose) -> Ticket:
    """The ticket's contents, once its signature, audience, claims and times check out.

    Raises a ``TicketError`` leaf. Does not check the ``jti`` (single use needs the database)
    or the return URL (the allow list).
    """
    if not ticket:
        raise TicketMissing
    if len(ticket) > MAX_TICKET_CHARS or not ticket.isascii():
        raise TicketMalformed
    try:
        claims = jwt.decode(
            ticket, secret, algorithms=[ALGORITHM], audience=purpose, options=_DECODE_OPTIONS
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise TicketBadSignature from None
    except jwt.InvalidAudienceError:
        raise TicketWrongPurpose from None
    except jwt.InvalidTokenError:
        raise TicketMalformed from None
    found = _parse(claims, purpose)
    if found.expires_at <= now:
        raise TicketExpired
    if found.issued_at > now + SKEW_SECONDS or found.expires_at - found.issued_at > MAX_TTL_SECONDS:
        raise TicketMalformed
    if found.expires_at > now + MAX_TTL_SECONDS + SKEW_SECONDS:
        raise TicketMalformed
    return found


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TicketMalformed
    return value


def _parse(claims: dict[str, Any], purpose: Purpose) -> Ticket:
    user, url, nonce = claims["sub"], claims["return_url"], claims["jti"]
    if not (isinstance(user, str) and 0 < len(user) <= 200 and user.isprintable()):
        raise TicketMalformed
    if not (isinstance(url, str) and 0 < len(url) <= MAX_TICKET_CHARS):
        raise TicketMalformed
    if not (isinstance(nonce, str) and _NONCE.fullmatch(nonce)):
        raise TicketMalformed
    return Ticket(user, url, _int(claims["iat"]), _int(claims["exp"]), nonce, purpose)
