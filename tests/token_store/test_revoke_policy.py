"""When an owed revoke is tried again (the pure core of the revoke outbox)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from token_store.revoke_policy import AttemptOutcome, RevokeSchedule

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SCHEDULE = RevokeSchedule()


@pytest.mark.parametrize("outcome", ["revoked", "invalid"], ids=["zoom_confirmed", "token_unknown"])
def test_zoom_confirming_or_not_knowing_the_token_ends_the_revoke(
    outcome: AttemptOutcome,
) -> None:
    assert SCHEDULE.next_attempt(outcome, 7, NOW) is None


@pytest.mark.parametrize("outcome", ["failed", "unreadable"])
def test_a_failed_attempt_is_tried_again_never_given_up(outcome: AttemptOutcome) -> None:
    assert SCHEDULE.next_attempt(outcome, 1, NOW) == NOW + timedelta(seconds=30)
    assert SCHEDULE.next_attempt(outcome, 10_000, NOW) == NOW + timedelta(hours=1)


def test_delays_double_up_to_the_cap() -> None:
    delays = [SCHEDULE.delay(n).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


@pytest.mark.parametrize(
    ("spread", "seconds"),
    [(0.0, 60.0), (0.5, 63.0), (0.999, 65.994), (7.0, 66.0), (-1.0, 60.0)],
    ids=["none", "half", "almost_all", "clamped_high", "clamped_low"],
)
def test_jitter_stretches_a_delay_by_at_most_its_fraction(spread: float, seconds: float) -> None:
    assert SCHEDULE.delay(2, spread).total_seconds() == pytest.approx(seconds)


def test_the_claim_lease_outlasts_the_longest_attempt() -> None:
    # ZoomOAuth's defaults: 3 attempts of at most 10 s, backoff capped at 5 s between them.
    longest_attempt = 3 * 10 + 2 * 5
    assert SCHEDULE.claim.total_seconds() > longest_attempt
