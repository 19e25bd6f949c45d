"""The Zoom permissions Talivo needs, checked when a user connects.

The help article lists three: create and manage meetings, view meeting details, view your
profile. A grant missing any of them would fail later, one event at a time (a meeting that
cannot be cancelled), so ``connect`` refuses it up front. Zoom names scopes two ways: classic
(``meeting:write``) and granular (``meeting:update:meeting``, optionally ``...:admin``); either
satisfies a need.
"""

from __future__ import annotations

from collections.abc import Iterable

# Each need: alternatives, each alternative a set of scopes that together satisfy it.
NEEDS: dict[str, tuple[frozenset[str], ...]] = {
    "create and manage meetings": (
        frozenset({"meeting:write"}),
        frozenset({"meeting:write:meeting", "meeting:update:meeting", "meeting:delete:meeting"}),
    ),
    "view meeting details": (
        frozenset({"meeting:read"}),
        frozenset({"meeting:read:meeting", "meeting:read:list_meetings"}),
    ),
    "view your profile": (frozenset({"user:read"}), frozenset({"user:read:user"})),
}


def _covers(granted: frozenset[str], scope: str) -> bool:
    return scope in granted or f"{scope}:admin" in granted


def missing(granted: Iterable[str]) -> list[str]:
    """The needs (as the help article names them) that ``granted`` does not cover."""
    have = frozenset(granted)
    return [
        need
        for need, alternatives in NEEDS.items()
        if not any(all(_covers(have, s) for s in option) for option in alternatives)
    ]
