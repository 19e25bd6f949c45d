"""Values the token store hands out. Tokens never appear in a repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ZoomGrant:
    """A usable access token for one Talivo user, and whose Zoom identity it carries."""

    user_id: str  # the Talivo user
    zoom_user_id: str
    zoom_account_id: str  # Zoom rate limits are per account
    access_token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class ConnectionStatus:
    """What is stored about a user's Zoom connection, without any token."""

    user_id: str
    zoom_user_id: str
    zoom_account_id: str
    scopes: tuple[str, ...]
    access_expires_at: datetime
    key_id: str  # the key sealing the tokens; rotate-key moves every row to the active one
    connected_at: datetime
    refreshed_at: datetime | None


@dataclass(frozen=True)
class Deauthorized:
    """What a deauthorization did to the connections of one Zoom user."""

    deleted: int  # connections made at or before the deauthorization, now gone
    kept: int  # connections made after it (a newer consent the deauthorization predates)
