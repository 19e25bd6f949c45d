"""Why the consumption engine refuses to start or stops.

    EngineError
    ├── StartupCheckFailed      the deployment cannot keep one event's messages in order
    │   ├── WrongAssignor       a partition assignor other than the range assignor
    │   ├── TopicMissing        an event topic the broker does not know
    │   └── TopicsNotCoPartitioned
    └── HandlerFailed         the record handler raised (a bug); ``__cause__`` is its exception

Kafka errors from aiokafka during consumption propagate unchanged (they are fatal there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class EngineError(Exception):
    """Base of the engine's errors."""


class StartupCheckFailed(EngineError):
    """Raised before joining the group: consuming would break per-event ordering."""


class WrongAssignor(StartupCheckFailed):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            f"partition assignment must be exactly the range assignor, got {list(names)}: "
            "only it gives one consumer the same partition number of every event topic"
        )


class TopicMissing(StartupCheckFailed):
    def __init__(self, topics: Sequence[str]) -> None:
        super().__init__(f"topics not found on the broker: {', '.join(topics)}")


class TopicsNotCoPartitioned(StartupCheckFailed):
    def __init__(self, partitions: Mapping[str, int]) -> None:
        counts = ", ".join(f"{topic} has {count}" for topic, count in partitions.items())
        super().__init__(
            f"event topics must have the same number of partitions ({counts}): otherwise "
            "one event's messages reach different consumers and may be applied concurrently"
        )
        self.partitions = dict(partitions)


class HandlerFailed(EngineError):
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        super().__init__(
            f"handler raised on {topic}[{partition}]@{offset}; that offset was not committed"
        )
        self.topic, self.partition, self.offset = topic, partition, offset
