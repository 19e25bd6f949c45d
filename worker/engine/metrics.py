"""Metrics of consumption. Names and label values are constants, never free text.

Two kinds: a gauge the engine sets as it goes (the fetch lag ``PARTITION_LAG``), and
``ENGINES``, a collector that reads each running engine's ``status()`` when ``/metrics`` is
scraped (worker/engine/status.py says what each figure means), messages in flight among them:
counted at each scrape, not set twice per message (a locked gauge write each time, 1-2 % of
the worker's CPU at full load). Those series exist only for
the partitions an engine holds now: a revoked partition's series are gone from the next scrape,
and a stopped engine's with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from worker.engine.status import EngineStatus

PARTITION_LAG = Gauge(
    "zoom_worker_partition_lag",
    "Fetch lag: messages behind the partition's end offset not yet taken from Kafka. Leaves "
    "out messages taken and unfinished (up to MAX_BUFFERED_MESSAGES); see "
    "zoom_worker_consumergroup_lag.",
    ["topic", "partition"],
)

_PARTITION_LABELS = ("consumergroup", "topic", "partition")


class StatusSource(Protocol):
    def status(self) -> EngineStatus: ...


class EngineCollector(Collector):
    """Renders the status of every engine it watches, at each scrape.

    Two engines in one process (tests) reporting the same series: the larger value is kept
    (messages in flight: the sum).
    """

    def __init__(self) -> None:
        self._sources: list[StatusSource] = []

    def watch(self, source: StatusSource) -> None:
        self._sources.append(source)

    def forget(self, source: StatusSource) -> None:
        if source in self._sources:
            self._sources.remove(source)

    def describe(self) -> Iterable[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterable[Metric]:
        return list(self._families([source.status() for source in list(self._sources)]))

    @staticmethod
    def _families(statuses: list[EngineStatus]) -> Iterator[Metric]:
        lag: dict[tuple[str, ...], float] = {}
        age: dict[tuple[str, ...], float] = {}
        progress: dict[str, float] = {}
        in_flight = 0
        for status in statuses:
            in_flight += status.in_flight
            progress[status.group] = max(
                progress.get(status.group, 0.0), status.progress_age_seconds
            )
            for p in status.partitions:
                key = (status.group, p.topic, str(p.partition))
                if p.committed_lag is not None:
                    lag[key] = max(lag.get(key, 0.0), float(p.committed_lag))
                age[key] = max(age.get(key, 0.0), p.oldest_unfinished_age_seconds)
        yield _family(
            "zoom_worker_in_flight",
            "Messages taken but not yet finished, in every engine of the process.",
            (),
            {(): float(in_flight)},
        )
        yield _family(
            "zoom_worker_consumergroup_lag",
            "Committed lag: the partition's high watermark minus the group's committed offset "
            "(kafka_exporter's convention); counts messages taken and unfinished too.",
            _PARTITION_LABELS,
            lag,
        )
        yield _family(
            "zoom_worker_oldest_unfinished_age_seconds",
            "Seconds since the oldest message taken from the partition and not yet finished "
            "was taken; 0 when none is.",
            _PARTITION_LABELS,
            age,
        )
        yield _family(
            "zoom_worker_consumer_progress_age_seconds",
            "Seconds since the consume loop last took a message, finished one, or polled with "
            "nothing to do.",
            ("consumergroup",),
            {(group,): seconds for group, seconds in progress.items()},
        )


def _family(
    name: str, documentation: str, labels: tuple[str, ...], samples: dict[tuple[str, ...], float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for values, value in sorted(samples.items()):
        family.add_metric(list(values), value)
    return family


ENGINES = EngineCollector()
REGISTRY.register(ENGINES)
