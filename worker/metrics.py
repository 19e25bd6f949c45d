"""Prometheus metrics of the worker. Names and label values are constants, never free text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "zoom_worker_messages_total",
    "Source messages handled, by topic and outcome (linked, failed, stale, invalid).",
    ["topic", "outcome"],
)
FAILURES = Counter(
    "zoom_worker_failures_total", "meeting.failed results published, by reason.", ["reason"]
)
MESSAGE_SECONDS = Histogram(
    "zoom_worker_message_seconds",
    "Time from taking a message to publishing its result.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
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
IN_FLIGHT = Gauge("zoom_worker_in_flight", "Messages taken but not yet finished.")
ACTIVE = Gauge(
    "zoom_worker_active", "Messages admitted to Zoom work (the rest of in-flight is waiting)."
)
PARTITION_LAG = Gauge(
    "zoom_worker_partition_lag",
    "Messages behind the partition's end offset.",
    ["topic", "partition"],
)
DEAD_LETTERED = Counter(
    "zoom_worker_dead_lettered_total",
    "Source messages parked in the dead-letter topic.",
    ["reason"],
)
