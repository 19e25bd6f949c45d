"""Metrics of message handling. Names and label values are constants, never free text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "zoom_worker_messages_total",
    "Source messages handled, by topic and outcome (linked, failed, deferred, stale, invalid...).",
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
ACTIVE = Gauge(
    "zoom_worker_active", "Messages admitted to Zoom work (the rest of in-flight is waiting)."
)
HANDOVERS = Counter(
    "zoom_worker_handovers_total",
    "Meetings of an earlier organizer met by a handover, by outcome: old_cancelled (with its "
    "host's token), old_left (its host's connection no longer works; left on Zoom), "
    "unfinished_left (another host's unfinished create could not be looked for).",
    ["outcome"],
)
DEAD_LETTERED = Counter(
    "zoom_worker_dead_lettered_total",
    "Source messages parked in the dead-letter topic.",
    ["reason"],
)
POISON = Counter(
    "zoom_worker_poison_messages_total",
    "Source messages the worker failed on every time it tried while Postgres and the broker "
    "answered, parked in the dead-letter topic (reason processing_error), by topic.",
    ["topic"],
)
RETRIES_SCHEDULED = Counter(
    "zoom_worker_retries_scheduled_total",
    "Failures the worker will retry by itself (first failures and later ones), by reason.",
    ["reason"],
)
RETRIES_RUN = Counter(
    "zoom_worker_retries_run_total",
    "Scheduled retries run, by outcome (linked, deferred again, failed, superseded, ...).",
    ["outcome"],
)
RETRIES_EXPIRED = Counter(
    "zoom_worker_retries_expired_total",
    "Retries given up past the horizon (failed for good and dead-lettered), by reason.",
    ["reason"],
)
RETRIES_PENDING = Gauge(
    "zoom_worker_retries_pending",
    "Events with a retry pending, all replicas together (read from the schedule).",
)
RETRIES_DUE = Gauge(
    "zoom_worker_retries_due",
    "Pending retries already due and not yet claimed (a backlog when it stays high).",
)
RETRY_OLDEST_SECONDS = Gauge(
    "zoom_worker_retry_oldest_age_seconds",
    "Age of the oldest pending retry, from its first failure (0 when none is pending).",
)
