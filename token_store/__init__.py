"""Zoom OAuth and the encrypted token storage, usable alone by the worker and the connect side.

Depends on ``schemas`` at most, never on ``worker``.
"""

from token_store.crypto import DecryptError, KeyRing
from token_store.errors import (
    AccountInactive,
    AuthorizationExpired,
    InvalidGrant,
    MissingPermissions,
    NotConnected,
    OAuthRejected,
    TokenServiceUnavailable,
    TokenStoreError,
    TokenUnreadable,
)
from token_store.models import ConnectionStatus, Deauthorized, ZoomGrant
from token_store.oauth import TokenAnswer, ZoomOAuth, ZoomUser
from token_store.store import TokenStore

__all__ = [
    "AccountInactive",
    "AuthorizationExpired",
    "ConnectionStatus",
    "Deauthorized",
    "DecryptError",
    "InvalidGrant",
    "KeyRing",
    "MissingPermissions",
    "NotConnected",
    "OAuthRejected",
    "TokenAnswer",
    "TokenServiceUnavailable",
    "TokenStore",
    "TokenStoreError",
    "TokenUnreadable",
    "ZoomGrant",
    "ZoomOAuth",
    "ZoomUser",
]
