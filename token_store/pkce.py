"""PKCE (RFC 7636) with the S256 method: a code verifier and its challenge.

The one implementation, shared by the connect side (which stores the verifier with the OAuth
state) and the dev tooling (the demo's code flow). Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_verifier() -> str:
    """A fresh code verifier: 64 URL-safe characters, within RFC 7636's 43-128."""
    return secrets.token_urlsafe(48)


def s256(verifier: str) -> str:
    """The S256 code challenge: unpadded base64url of the verifier's SHA-256."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pair() -> tuple[str, str]:
    """A fresh ``(verifier, challenge)``."""
    verifier = new_verifier()
    return verifier, s256(verifier)
