"""Metrics of consumption. Names and label values are constants, never free text."""

from __future__ import annotations

from prometheus_client import Gauge

IN_FLIGHT = Gauge("zoom_worker_in_flight", "Messages taken but not yet finished.")
PARTITION_LAG = Gauge(
    "zoom_worker_partition_lag",
    "Messages behind the partition's end offset.",
    ["topic", "partition"],
)
