"""Metrics of Zoom API calls. Names and label values are constants, never free text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
BREAKER_STATE = Gauge(
    "zoom_worker_breaker_state",
    "Circuit breaker state by scope: 0 closed, 1 half-open (a probe may go), 2 open.",
    ["scope"],
)
BREAKER_TRANSITIONS = Counter(
    "zoom_worker_breaker_transitions_total",
    "Circuit breaker state changes by scope and the state entered.",
    ["scope", "state"],
)
BREAKER_PROBES = Counter(
    "zoom_worker_breaker_probes_total",
    "Calls let through an open breaker to see whether Zoom is back, by outcome.",
    ["scope", "outcome"],
)
BREAKER_REFUSED = Counter(
    "zoom_worker_breaker_refused_calls_total",
    "Calls not sent because the breaker was open.",
    ["scope"],
)
HOSTS_AT_DAILY_LIMIT = Gauge(
    "zoom_worker_hosts_at_daily_limit",
    "Hosts whose creates and updates are held back until Zoom resets their daily limit.",
)
