"""Which offset of one partition is safe to commit, whatever order its records finish in.

A committed offset is the next record a new owner reads, so it may only move past records that
are done: it is the lowest offset taken and not yet done, or one past the last taken record when
all are done. Offsets may have gaps (compaction, transaction markers); only taken ones count.
It also remembers when each unfinished record was taken (the caller's clock, passed in), so the
age of the oldest unfinished one can be read. Pure state, no I/O: the engine calls it from the
event loop only.
"""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    """Offsets taken from one partition, in fetch order, and which of them are done."""

    def __init__(self) -> None:
        self._unfinished: deque[int] = deque()  # taken, in order; done ones popped from the left
        self._pending: dict[int, float | None] = {}  # taken and not done -> when taken
        self._next: int | None = None  # one past the last taken offset
        self._committed: int | None = None

    def take(self, offset: int, now: float | None = None) -> None:
        """Record that ``offset`` was handed out (at ``now``, when given); offsets must be taken
        in increasing order."""
        if self._next is not None and offset < self._next:
            raise ValueError(f"offset {offset} taken after {self._next - 1}")
        self._unfinished.append(offset)
        self._pending[offset] = now
        self._next = offset + 1

    def done(self, offset: int) -> None:
        """Record that the record at ``offset`` finished; it must have been taken and not done."""
        if offset not in self._pending:
            raise ValueError(f"offset {offset} is not in flight")
        del self._pending[offset]
        while self._unfinished and self._unfinished[0] not in self._pending:
            self._unfinished.popleft()

    @property
    def next_offset(self) -> int | None:
        """One past the last taken offset: where the consumer's reading stands."""
        return self._next

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def oldest_taken_at(self) -> float | None:
        """When the oldest unfinished record was taken; None when none is (or it was taken
        without a time). Records are taken in offset order, so it is the lowest unfinished."""
        return self._pending[self._unfinished[0]] if self._unfinished else None

    def committable(self) -> int | None:
        """The offset to commit now, or None if nothing was ever taken."""
        if self._unfinished:
            return self._unfinished[0]
        return self._next

    def to_commit(self) -> int | None:
        """``committable()`` if it differs from what was last marked committed, else None."""
        offset = self.committable()
        return None if offset is None or offset == self._committed else offset

    def mark_committed(self, offset: int) -> None:
        self._committed = offset
