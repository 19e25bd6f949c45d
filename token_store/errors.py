"""Everything the token store raises. The worker maps each leaf to a ``meeting.failed`` reason.

    TokenStoreError                 .reason: FailureReason, .retryable: bool
    ├── NotConnected                zoom_not_connected: no connection stored for the user
    ├── AuthorizationExpired        zoom_authorization_expired: Zoom refused the grant
    │   └── InvalidGrant            Zoom answered ``invalid_grant`` (dead refresh token or code)
    ├── AccountInactive             zoom_account_inactive: the Zoom user is deactivated
    ├── MissingPermissions          zoom_authorization_expired: the user granted fewer scopes
    │                               than Talivo needs (refused at connect, nothing stored)
    ├── TokenUnreadable             zoom_authorization_expired: a stored token does not
    │                               decrypt (names the key id only; the row is kept)
    ├── OAuthRejected               zoom_unavailable, permanent: Zoom refused our OAuth request
    │                               itself (client credentials, redirect URI)
    └── TokenServiceUnavailable     zoom_unavailable, retryable: Zoom OAuth unreachable, timing
                                    out or answering 5xx/429 after retries

Messages never contain a token, an authorization code, a key or a client secret. httpx errors
are translated in ``oauth.py`` only, by class name, never quoted. Database errors
(``psycopg.Error``) are not Zoom's and pass through unchanged for the caller's own retry.
"""

from __future__ import annotations

from typing import ClassVar

from schemas.reasons import FailureReason


class TokenStoreError(Exception):
    reason: ClassVar[FailureReason] = FailureReason.ZOOM_UNAVAILABLE
    retryable: ClassVar[bool] = False


class NotConnected(TokenStoreError):
    """No Zoom connection is stored for this user (never connected, or disconnected)."""

    reason = FailureReason.ZOOM_NOT_CONNECTED


class AuthorizationExpired(TokenStoreError):
    """Zoom no longer honours the grant; the stored tokens have been deleted."""

    reason = FailureReason.ZOOM_AUTHORIZATION_EXPIRED


class InvalidGrant(AuthorizationExpired):
    """Zoom's token endpoint said ``invalid_grant``. From ``ZoomOAuth``; the store decides
    whether it is final (see ``TokenStore``)."""


class AccountInactive(TokenStoreError):
    """The Zoom user behind the connection is deactivated."""

    reason = FailureReason.ZOOM_ACCOUNT_INACTIVE


class MissingPermissions(TokenStoreError):
    """The grant lacks a permission Talivo needs; ``missing`` names them as the article does."""

    reason = FailureReason.ZOOM_AUTHORIZATION_EXPIRED

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class TokenUnreadable(TokenStoreError):
    """A stored token does not decrypt: unknown key id, tampered or moved ciphertext."""

    reason = FailureReason.ZOOM_AUTHORIZATION_EXPIRED

    def __init__(self, message: str, *, kid: str) -> None:
        super().__init__(message)
        self.kid = kid


class OAuthRejected(TokenStoreError):
    """Zoom refused the OAuth request itself (bad client credentials, redirect URI mismatch):
    an operator problem, so stored tokens are kept and retrying does not help."""


class TokenServiceUnavailable(TokenStoreError):
    """Zoom's OAuth endpoints could not be reached or kept failing; try again later."""

    retryable = True
