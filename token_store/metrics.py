"""Prometheus metrics of the token store. Label values are the Literal constants below."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter

RefreshOutcome = Literal["refreshed", "expired", "inactive", "unavailable", "rejected"]

REFRESHES = Counter(
    "zoom_token_refreshes_total",
    "Access-token refreshes at Zoom, by outcome "
    "(refreshed, expired, inactive, unavailable, rejected).",
    ["outcome"],
)
REVOKE_FAILURES = Counter(
    "zoom_token_revoke_failures_total",
    "Grants that could not be revoked at Zoom after retries (the tokens were deleted anyway).",
)
REKEYED = Counter(
    "zoom_token_rekeyed_total", "Stored connections re-encrypted under the active key."
)


def count_refresh(outcome: RefreshOutcome) -> None:
    REFRESHES.labels(outcome).inc()
