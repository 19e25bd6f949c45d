"""The port the Meetings client gets access tokens through (the token store implements it)."""

from __future__ import annotations

from typing import Protocol

from token_store.models import ZoomGrant


class AccessTokens(Protocol):
    """Access tokens for a Talivo user; errors raised here reach the caller unchanged."""

    async def get_access_token(self, user_id: str) -> ZoomGrant:
        """A grant whose access token is believed valid now."""
        ...

    async def refresh_after_rejection(self, user_id: str, rejected: ZoomGrant) -> ZoomGrant:
        """A newer grant after Zoom refused ``rejected`` (401/124).

        If another caller already refreshed past ``rejected``, return that grant rather than
        refreshing again.
        """
        ...
