"""Prometheus metrics of the token store. Label values are the Literal constants below."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter, Gauge

RefreshOutcome = Literal["refreshed", "expired", "inactive", "unavailable", "rejected"]
RevokeOutcome = Literal["revoked", "invalid", "failed", "unreadable", "still_connected", "lost"]

REFRESHES = Counter(
    "zoom_token_refreshes_total",
    "Access-token refreshes at Zoom, by outcome "
    "(refreshed, expired, inactive, unavailable, rejected).",
    ["outcome"],
)
REVOKES = Counter(
    "zoom_token_revokes_total",
    "Revokes of dropped grants, by outcome: revoked, invalid (Zoom no longer knew the token: "
    "done), failed and unreadable (attempts kept in the outbox for another try), "
    "still_connected (not revoked: another connection holds that Zoom user), lost (failed "
    "with nowhere durable to keep it).",
    ["outcome"],
)
REVOKES_PENDING = Gauge(
    "zoom_token_revokes_pending",
    "Revokes owed to Zoom and kept in the outbox (refreshed by zoom-worker serve's revoke loop).",
)
REVOKE_FAILURES = Counter(
    "zoom_token_revoke_failures_total",
    "Revoke attempts that failed after their retries, or whose token did not decrypt (the "
    "tokens were deleted anyway; the revoke stays in the outbox).",
)
REKEYED = Counter(
    "zoom_token_rekeyed_total", "Stored connections re-encrypted under the active key."
)


def count_refresh(outcome: RefreshOutcome) -> None:
    REFRESHES.labels(outcome).inc()


def count_revoke(outcome: RevokeOutcome) -> None:
    REVOKES.labels(outcome).inc()
    if outcome in ("failed", "unreadable"):
        REVOKE_FAILURES.inc()
