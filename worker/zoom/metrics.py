"""Metrics of Zoom API calls. Names and label values are constants, never free text."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ZOOM_REQUESTS = Counter(
    "zoom_worker_zoom_requests_total",
    "Zoom API calls by endpoint and HTTP status ('error' when no answer came).",
    ["endpoint", "status"],
)
ZOOM_REQUEST_SECONDS = Histogram(
    "zoom_worker_zoom_request_seconds",
    "Zoom API call latency by endpoint.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ZOOM_RETRIES = Counter(
    "zoom_worker_zoom_retries_total",
    "Zoom API retries by endpoint and cause.",
    ["endpoint", "cause"],
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "zoom_worker_rate_limit_wait_seconds",
    "Time spent waiting for a Zoom account's rate-limit bucket.",
    ["category"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
