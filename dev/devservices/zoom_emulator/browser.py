"""The user's side of Zoom's consent page, for tests: who is signed in and what they click."""

from __future__ import annotations

from typing import Literal

import httpx

Decision = Literal["allow", "deny"]


async def consent(
    client: httpx.AsyncClient, authorize_url: str, login: str, decision: Decision = "allow"
) -> str:
    """Open ``authorize_url`` (the emulator's ``/oauth/authorize?...``) as ``login`` (email or
    Zoom user id), click ``decision``, and return where Zoom sends the browser back to."""
    url = httpx.URL(authorize_url)
    url = url.copy_merge_params({"login": login, "decision": decision})
    response = await client.get(url, follow_redirects=False)
    if response.status_code != 302:
        raise AssertionError(f"authorize answered {response.status_code}: {response.text[:200]}")
    return response.headers["location"]
