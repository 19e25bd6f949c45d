"""Per-account token buckets: exact waits with a fake clock, and isolation against the emulator."""

from __future__ import annotations

import asyncio
import time

import httpx
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator

from tests.zoom.conftest import EmulatorTokens
from tests.zoom.test_client import SPEC
from worker.zoom import AccountRateLimiter, BucketConfig, ZoomMeetings
from worker.zoom.ratelimit import PRO


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
    assert PRO["Medium"].rate + PRO["Medium"].burst == 20
    assert PRO["Light"].rate + PRO["Light"].burst == 30


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
