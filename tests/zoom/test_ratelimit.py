"""Per-account token buckets: exact waits with a fake clock, and isolation against the emulator."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import httpx
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator
from psycopg_pool import AsyncConnectionPool

from tests.zoom.conftest import EmulatorTokens
from tests.zoom.test_client import SPEC
from worker.runtime.shared_limits import SharedRateLimiter
from worker.zoom import AccountRateLimiter, BucketConfig, ZoomMeetings
from worker.zoom.errors import ZoomRateLimited
from worker.zoom.ratelimit import PRO, Category, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pro_defaults_never_exceed_zoom_per_second() -> None:
    """No one-second window above Zoom's ceiling, yet at least 90 % of it sustained."""
    for category, ceiling in (("Medium", 20), ("Light", 30)):
        config = PRO[category]  # type: ignore[index]
        assert config.rate + config.burst <= ceiling
        assert config.rate >= 0.9 * ceiling


async def test_burst_then_paced_at_the_rate() -> None:
    clock = FakeClock()
    limiter = AccountRateLimiter(
        {"Light": BucketConfig(rate=10, burst=2), "Medium": BucketConfig(rate=1, burst=1)},
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    waits = [await limiter.acquire("acct-a", "Light") for _ in range(4)]
    assert waits[:2] == [0, 0]
    assert [round(w, 6) for w in waits[2:]] == [0.1, 0.1]
    # Another account and another category have their own buckets.
    assert await limiter.acquire("acct-b", "Light") == 0
    assert await limiter.acquire("acct-a", "Medium") == 0


async def test_concurrent_waiters_are_spaced_not_bunched() -> None:
    clock = FakeClock()
    limiter = AccountRateLimiter(
        {"Light": BucketConfig(rate=4, burst=1), "Medium": BucketConfig(rate=1, burst=1)},
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    waits = [await limiter.acquire("a", "Light") for _ in range(5)]
    # Reservations queue up: each caller waits one more slot than the one before it.
    assert [round(w, 6) for w in waits] == [0, 0.25, 0.25, 0.25, 0.25]


async def _timed_gets(client: ZoomMeetings, user: str, meeting_id: int, n: int) -> float:
    started = time.monotonic()
    for _ in range(n):
        await client.get_meeting(user, meeting_id)
    return time.monotonic() - started


async def test_flooded_account_does_not_slow_or_429_another(
    zoom: ZoomEmulator, ana: EmulatedUser, tokens: EmulatorTokens
) -> None:
    # Small limits keep the test short; the emulator enforces the same ceiling as Zoom would.
    zoom.set_qps("pro", "Light", 10)
    zoom.set_qps("pro", "Medium", 10)
    bo = zoom.add_user("bo@example.com")  # another Zoom account
    tokens.connect("talivo-bo", bo)
    limiter = AccountRateLimiter(
        {"Light": BucketConfig.under(10), "Medium": BucketConfig.under(10)}
    )
    async with httpx.AsyncClient() as http:
        client = ZoomMeetings(
            http,
            api_base_url=zoom.api_base_url,
            tokens=tokens,
            limiter=limiter,
            retry_budget_seconds=0.01,  # any 429 would surface, not be retried away
        )
        ana_meeting = (await client.create_meeting("talivo-ana", SPEC)).id
        bo_meeting = (await client.create_meeting("talivo-bo", SPEC)).id
        await asyncio.sleep(0.3)  # let both buckets fill again (burst 2 at 8/s)
        idle = await _timed_gets(client, "talivo-bo", bo_meeting, 8)
        await asyncio.sleep(0.3)

        flood = [
            asyncio.create_task(client.get_meeting("talivo-ana", ana_meeting)) for _ in range(12)
        ]
        await asyncio.sleep(0.05)  # the flood is queued on ana's bucket
        busy = await _timed_gets(client, "talivo-bo", bo_meeting, 8)
        await asyncio.gather(*flood)

    assert zoom.qps_refusals(ana.account_id) == 0
    assert zoom.qps_refusals(bo.account_id) == 0
    assert busy <= 1.5 * idle + 0.05, (busy, idle)
    assert zoom.calls("GET /v2/meetings/{meetingId}") == 28


async def test_without_a_shared_limiter_the_flood_hits_zoom_429(
    zoom: ZoomEmulator, ana: EmulatedUser, tokens: EmulatorTokens
) -> None:
    """The control: the emulator really refuses a flood the limiter would have paced."""
    zoom.set_qps("pro", "Light", 10)
    generous = AccountRateLimiter(
        {"Light": BucketConfig(rate=1000, burst=1000), "Medium": BucketConfig(1000, 1000)}
    )
    async with httpx.AsyncClient() as http:
        client = ZoomMeetings(
            http,
            api_base_url=zoom.api_base_url,
            tokens=tokens,
            limiter=generous,
            retry_budget_seconds=0.01,
        )
        meeting = (await client.create_meeting("talivo-ana", SPEC)).id
        results = await asyncio.gather(
            *(client.get_meeting("talivo-ana", meeting) for _ in range(20)), return_exceptions=True
        )
    assert zoom.qps_refusals(ana.account_id) >= 5
    assert any(isinstance(r, Exception) for r in results)


async def test_replicas_sharing_the_schedule_use_the_ceiling_without_a_429(
    zoom: ZoomEmulator, ana: EmulatedUser, tokens: EmulatorTokens, database_url: str
) -> None:
    """Three clients, as three replicas, each with its own pool on one Postgres schedule,
    flood one account for three seconds: together at least 90 % of its ceiling, not one 429.
    The control beside it: the same three with a process-local limiter each get 429s."""
    ceiling = 10
    zoom.set_qps("pro", "Light", ceiling)
    limits: dict[Category, BucketConfig] = {
        "Light": BucketConfig.under(ceiling),
        "Medium": BucketConfig.under(ceiling),
    }
    pools = [
        AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) for _ in range(3)
    ]
    for pool in pools:
        await pool.open()
    async with httpx.AsyncClient() as http:

        def client(limiter: RateLimiter) -> ZoomMeetings:
            return ZoomMeetings(
                http,
                api_base_url=zoom.api_base_url,
                tokens=tokens,
                limiter=limiter,
                retry_budget_seconds=0.01,  # any 429 surfaces
            )

        meeting = (await client(AccountRateLimiter(limits)).create_meeting("talivo-ana", SPEC)).id
        await asyncio.sleep(1.1)

        async def flood(replica: ZoomMeetings, seconds: float) -> int:
            done, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                await replica.get_meeting("talivo-ana", meeting)
                done += 1
            return done

        try:
            shared = [client(SharedRateLimiter(pool, limits)) for pool in pools]
            started = time.monotonic()
            calls = await asyncio.gather(*(flood(r, 3.0) for r in shared for _ in range(4)))
            took = time.monotonic() - started
            assert zoom.qps_refusals(ana.account_id) == 0
            rate = sum(calls) / took
            assert rate >= 0.9 * ceiling * (took - 0.2) / took, (rate, calls)

            await asyncio.sleep(1.1)
            alone = [client(AccountRateLimiter(limits)) for _ in pools]
            results = await asyncio.gather(
                *(flood(r, 1.5) for r in alone for _ in range(4)), return_exceptions=True
            )
            assert zoom.qps_refusals(ana.account_id) > 0, "the control: each alone overshoots"
            assert any(isinstance(r, ZoomRateLimited) for r in results)
        finally:
            for pool in pools:
                await pool.close()


async def test_a_429_pauses_every_replica_of_that_account_only(database_url: str) -> None:
    limits: dict[Category, BucketConfig] = {
        "Light": BucketConfig(rate=100, burst=1),
        "Medium": BucketConfig(100, 1),
    }
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await pool.wait()
        one, other = SharedRateLimiter(pool, limits), SharedRateLimiter(pool, limits)
        assert await one.acquire("acct-p", "Light") == 0
        await one.penalize("acct-p", "Light", 0.5)
        waited = await other.acquire("acct-p", "Light")
        assert 0.4 <= waited <= 0.6, "the other replica waits as Zoom asked"
        assert await other.acquire("acct-q", "Light") == 0, "another account does not"


async def test_one_batch_on_one_account_spaces_its_calls_one_interval_apart(
    database_url: str,
) -> None:
    """Forty calls on one account in one batch, one statement moving the row once: after the
    burst each waits exactly one interval more than the one before it, in arrival order."""
    interval, burst, calls = 0.01, 3, 40
    limits: dict[Category, BucketConfig] = {
        "Light": BucketConfig(rate=1 / interval, burst=burst),
        "Medium": BucketConfig(1, 1),
    }
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await pool.wait()
        limiter = SharedRateLimiter(pool, limits)
        await limiter.acquire("acct-burst", "Light")  # the row, then idle past its tolerance
        await asyncio.sleep(0.2)
        sent = limiter._batches.sent
        waits = await asyncio.gather(
            *(limiter.acquire("acct-burst", "Light") for _ in range(calls))
        )
        assert limiter._batches.sent == sent + 1, "one batch, not each call alone"
    assert all(w < 0.001 for w in waits[:burst]), waits  # the burst a quiet spell allows
    assert abs(waits[burst] - interval) < 0.003, waits
    steps = [later - earlier for earlier, later in pairwise(waits[burst:])]
    assert all(abs(step - interval) < 0.001 for step in steps), steps
    assert abs(waits[-1] - (calls - burst) * interval) < 0.003, waits


async def test_one_batch_of_two_accounts_and_two_categories_gives_each_row_its_schedule(
    database_url: str,
) -> None:
    """Calls on two accounts in two categories, interleaved in one batch: each (account,
    category) gets the schedule its calls alone would have had, from that row's state (a new
    row, an idle one's burst, one pushed out by a 429), at its category's interval."""
    light, medium = BucketConfig(rate=100, burst=3), BucketConfig(rate=50, burst=1)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await pool.wait()
        limiter = SharedRateLimiter(pool, {"Light": light, "Medium": medium})
        await limiter.acquire("acct-x", "Light")
        await asyncio.sleep(0.2)  # idle: a burst of three
        await limiter.penalize("acct-y", "Medium", 0.3)
        sent = limiter._batches.sent
        categories: tuple[Category, ...] = ("Light", "Medium")
        rows = [(account, category) for account in ("acct-x", "acct-y") for category in categories]
        calls = [row for _ in range(5) for row in reversed(rows)]
        waits = await asyncio.gather(*(limiter.acquire(a, c) for a, c in calls))
        assert limiter._batches.sent == sent + 1, "one batch, not each call alone"
    got = {row: [w for call, w in zip(calls, waits, strict=True) if call == row] for row in rows}
    expected: dict[tuple[str, Category], list[float]] = {
        ("acct-x", "Light"): [0.0, 0.0, 0.0, 0.01, 0.02],  # idle row: the burst, then paced
        ("acct-x", "Medium"): [0.0, 0.02, 0.04, 0.06, 0.08],  # new rows: from now
        ("acct-y", "Light"): [0.0, 0.01, 0.02, 0.03, 0.04],
        ("acct-y", "Medium"): [0.3, 0.32, 0.34, 0.36, 0.38],  # after the 429's pause
    }
    late = 0.3 - got["acct-y", "Medium"][0]  # the time since the penalty
    assert 0 <= late < 0.1, got
    for row, want in expected.items():
        shift = late if row == ("acct-y", "Medium") else 0.0
        off = [w + shift - e for w, e in zip(got[row], want, strict=True)]
        assert all(abs(d) < 0.003 for d in off), (row, got[row])
