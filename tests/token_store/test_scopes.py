"""Connect refuses a grant that lacks a permission the help article says Talivo needs."""

from __future__ import annotations

import pytest
from devservices.zoom_emulator import ZoomEmulator

from token_store import MissingPermissions, TokenStore
from token_store.scopes import missing

from .conftest import REDIRECT_URI


@pytest.mark.parametrize(
    ("granted", "lacking"),
    [
        ("meeting:write meeting:read user:read", []),
        ("meeting:write:admin meeting:read:admin user:read:admin", []),
        ("meeting:write:meeting meeting:update:meeting meeting:delete:meeting "
         "meeting:read:meeting meeting:read:list_meetings user:read:user", []),
        ("meeting:read user:read", ["create and manage meetings"]),
        ("meeting:write:meeting meeting:update:meeting meeting:read user:read",
         ["create and manage meetings"]),
        ("meeting:write", ["view meeting details", "view your profile"]),
        ("", ["create and manage meetings", "view meeting details", "view your profile"]),
    ],
    ids=["classic", "classic-admin", "granular", "no-write", "granular-without-delete",
         "write-only", "nothing"],
)  # fmt: skip
def test_missing_names_what_the_grant_lacks(granted: str, lacking: list[str]) -> None:
    assert missing(granted.split()) == lacking


async def test_a_grant_without_delete_is_refused_and_revoked(
    store: TokenStore, zoom: ZoomEmulator
) -> None:
    user = zoom.add_user("partial@example.com")
    code = zoom.authorize(user.id, redirect_uri=REDIRECT_URI, scopes="meeting:read user:read")
    revokes = zoom.calls("POST /oauth/revoke")
    with pytest.raises(MissingPermissions) as caught:
        await store.connect("u-partial", code, None, REDIRECT_URI)
    assert caught.value.missing == ["create and manage meetings"]
    assert await store.status("u-partial") is None
    assert zoom.calls("POST /oauth/revoke") == revokes + 1
