"""What an engine can say about itself at any moment: lag, oldest unfinished, last progress.

A snapshot read from the engine's own state (no broker round trip): ``/metrics`` renders it
(worker/engine/metrics.py) and the worker's liveness judges it (worker/runtime/health.py).

- *Committed lag* of a partition: its high watermark minus the group's committed offset, the
  convention of kafka_exporter's ``kafka_consumergroup_lag``. The committed offset is the one
  this engine last committed, or, before its first commit, the offset it found at assignment.
  It counts every record not yet finished, taken ones included (unlike the fetch lag
  ``zoom_worker_partition_lag``). Unknown (None) until the partition has been fetched once.
- *Oldest unfinished age*: seconds since the oldest record taken from the partition and not
  yet finished was taken; 0 when none is.
- *Progress age*: seconds since the consume loop last took a record, finished one, or polled
  with nothing in flight and nothing to take.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    committed_lag: int | None
    oldest_unfinished_age_seconds: float


@dataclass(frozen=True)
class EngineStatus:
    group: str
    progress_age_seconds: float
    in_flight: int  # taken and not finished, queued ones included
    partitions: tuple[PartitionStatus, ...]  # the assigned ones, none being revoked

    @property
    def committed_lag(self) -> int:
        """The known committed lag of every assigned partition, summed."""
        return sum(p.committed_lag or 0 for p in self.partitions)

    @property
    def has_work(self) -> bool:
        """Records taken and unfinished, or records waiting in Kafka for this consumer."""
        return self.in_flight > 0 or self.committed_lag > 0
