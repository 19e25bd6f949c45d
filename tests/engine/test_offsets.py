"""The committable offset never passes a record that has not finished."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.engine.offsets import OffsetTracker


def test_nothing_taken_commits_nothing() -> None:
    assert OffsetTracker().committable() is None


def test_commits_up_to_first_unfinished_then_past_the_last() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.take(offset)
    tracker.done(11)
    assert tracker.committable() == 10
    tracker.done(10)
    assert tracker.committable() == 12
    tracker.done(12)
    assert tracker.committable() == 13


def test_gaps_in_offsets_are_skipped() -> None:
    tracker = OffsetTracker()
    tracker.take(5)
    tracker.take(9)
    tracker.done(5)
    assert tracker.committable() == 9


def test_to_commit_is_none_once_marked() -> None:
    tracker = OffsetTracker()
    tracker.take(0)
    tracker.done(0)
    assert tracker.to_commit() == 1
    tracker.mark_committed(1)
    assert tracker.to_commit() is None


@pytest.mark.parametrize(
    ("taken", "done", "message"),
    [
        pytest.param([3], [4], "not in flight", id="done-never-taken"),
        pytest.param([3], [3, 3], "not in flight", id="done-twice"),
    ],
)
def test_misuse_is_refused(taken: list[int], done: list[int], message: str) -> None:
    tracker = OffsetTracker()
    for offset in taken:
        tracker.take(offset)
    with pytest.raises(ValueError, match=message):
        for offset in done:
            tracker.done(offset)


def test_taking_backwards_is_refused() -> None:
    tracker = OffsetTracker()
    tracker.take(3)
    with pytest.raises(ValueError, match="taken after"):
        tracker.take(2)


@st.composite
def _runs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    gaps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=40))
    start = draw(st.integers(0, 1000))
    offsets = [start + sum(gaps[:i]) for i in range(len(gaps))]
    finished = draw(st.permutations(offsets))
    count = draw(st.integers(0, len(offsets)))
    return offsets, list(finished[:count])


@given(_runs())
def test_committable_is_always_the_lowest_unfinished(run: tuple[list[int], list[int]]) -> None:
    offsets, finished = run
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.take(offset)
    done: set[int] = set()
    for offset in finished:
        tracker.done(offset)
        done.add(offset)
        unfinished = [o for o in offsets if o not in done]
        expected = min(unfinished) if unfinished else offsets[-1] + 1
        assert tracker.committable() == expected
        assert tracker.in_flight == len(unfinished)
