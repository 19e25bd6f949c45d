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
