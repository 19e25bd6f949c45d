"""Zoom's daily per-host limit held by every replica (``worker/runtime/shared_daily.py``).

Two ``SharedDailyLimits``, each with a pool of its own, stand for two replicas on one Postgres:
what one learns from Zoom the other applies within the refresh period, without a request; a
Postgres outage while a replica learns it raises nothing and is made good once Postgres is
back; a restarted replica loads the holds from the table. The refresh period is 0.2 s here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from devservices.zoom_emulator import ZoomEmulator
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from tests.worker.test_outages import Cut, through
from tests.zoom.conftest import EmulatorTokens
from tests.zoom.test_client import SPEC
from worker.runtime.app import daily_limits
from worker.runtime.config import ConfigError, load_settings
from worker.runtime.shared_daily import SharedDailyLimits
from worker.zoom import MeetingPatch, ZoomDailyLimitReached, ZoomMeetings
from worker.zoom.daily import DailyLimits
from worker.zoom.metrics import HOSTS_AT_DAILY_LIMIT

Pool = AsyncConnectionPool[AsyncConnection]
REFRESH = 0.2
CREATE = "POST /v2/users/{userId}/meetings"
PATCH = "PATCH /v2/meetings/{meetingId}"


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id="emu-client", client_secret="emu-secret") as emulator:
        yield emulator


async def _pool(url: str, **kwargs: float) -> Pool:
    pool: Pool = AsyncConnectionPool(url, min_size=1, max_size=2, open=False, **kwargs)
    await pool.open()
    return pool


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[tuple[Pool, Pool]]:
    """One pool per replica."""
    one, other = await _pool(database_url), await _pool(database_url)
    await one.wait()
    await other.wait()
    yield one, other
    await one.close()
    await other.close()


@pytest.fixture
async def table(database_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own, outside the replicas' pools."""
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


async def stored(conn: AsyncConnection, user_id: str) -> datetime | None:
    cursor = await conn.execute(
        "SELECT until FROM zoom_daily_limits WHERE user_id = %s", (user_id,)
    )
    row = await cursor.fetchone()
    return None if row is None else row[0]


def holds(limits: SharedDailyLimits, user_id: str) -> bool:
    try:
        limits.check(user_id, datetime.now(UTC))
    except ZoomDailyLimitReached:
        return True
    return False


async def eventually(predicate: Callable[[], bool], timeout: float) -> None:
    """Return once ``predicate()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.02)


def hosts_at_daily_limit() -> float:
    value: float = HOSTS_AT_DAILY_LIMIT._value.get()
    return value


async def test_a_limit_one_replica_learns_holds_the_other_until_the_reset(
    zoom: ZoomEmulator, pools: tuple[Pool, Pool], table: AsyncConnection
) -> None:
    # Zoom's clock 2.5 s before midnight UTC: its daily-limit answer says the reset is then.
    now = datetime.now(UTC)
    zoom.clock_offset = (
        datetime.combine(now.date(), day_time(23, 59, 57, 500_000), tzinfo=UTC) - now
    )
    zoom.daily_limit_headers = True
    ana, bea = zoom.add_user("ana@example.com"), zoom.add_user("bea@example.com")
    tokens = EmulatorTokens(zoom)
    tokens.connect("talivo-ana", ana)
    tokens.connect("talivo-bea", bea)
    zoom.set_daily_used(ana.id, zoom.daily_limit)
    one = SharedDailyLimits(pools[0], refresh_seconds=REFRESH)
    other = SharedDailyLimits(pools[1], refresh_seconds=REFRESH)
    async with (
        httpx.AsyncClient() as http,
        one.running(),
        other.running(),
    ):
        replica_a, replica_b = (
            ZoomMeetings(http, api_base_url=zoom.api_base_url, tokens=tokens, daily_limits=d)
            for d in (one, other)
        )
        with pytest.raises(ZoomDailyLimitReached) as learned:
            await replica_a.create_meeting("talivo-ana", SPEC)
        assert learned.value.attempts == 1 and zoom.calls(CREATE) == 1
        resets_at = learned.value.resets_at
        assert resets_at - datetime.now(UTC) < timedelta(seconds=4)

        # Replica B learns it from the table within the refresh period, not from Zoom.
        await eventually(lambda: holds(other, "talivo-ana"), timeout=REFRESH + 0.5)
        assert await stored(table, "talivo-ana") == resets_at
        with pytest.raises(ZoomDailyLimitReached) as held:
            await replica_b.create_meeting("talivo-ana", SPEC)
        assert held.value.attempts == 0 and held.value.resets_at == resets_at
        with pytest.raises(ZoomDailyLimitReached):
            await replica_b.update_meeting("talivo-ana", 1, MeetingPatch(topic="x"))
        assert zoom.calls(CREATE) == 1 and zoom.calls(PATCH) == 0
        assert hosts_at_daily_limit() == 1
        # Another host goes on, on either replica.
        await replica_b.create_meeting("talivo-bea", SPEC)
        await replica_a.create_meeting("talivo-bea", SPEC)
        assert zoom.calls(CREATE) == 3

        # After the reset both replicas send ana's creates again (and Zoom takes them).
        await asyncio.sleep((resets_at - datetime.now(UTC)).total_seconds() + 0.05)
        await replica_a.create_meeting("talivo-ana", SPEC)
        await replica_b.create_meeting("talivo-ana", SPEC)
        assert zoom.calls(CREATE) == 5
        await asyncio.sleep(2 * REFRESH)  # a refresh does not bring the hold back
        assert not holds(one, "talivo-ana") and not holds(other, "talivo-ana")
        assert hosts_at_daily_limit() == 0


async def test_an_outage_while_a_replica_learns_a_limit_raises_nothing_and_is_made_good(
    database_url: str, pools: tuple[Pool, Pool]
) -> None:
    db = urlsplit(database_url)
    assert db.hostname is not None and db.port is not None
    with Cut(db.hostname, db.port) as cut:
        cut_pool = await _pool(through(database_url, cut.port), timeout=1.0)
        await cut_pool.wait()
        one = SharedDailyLimits(cut_pool, refresh_seconds=REFRESH)
        other = SharedDailyLimits(pools[1], refresh_seconds=REFRESH)
        try:
            async with one.running(), other.running():
                cut.cut()
                with structlog.testing.capture_logs() as logs:
                    one.reached("talivo-cy", datetime.now(UTC) + timedelta(minutes=5))
                    assert holds(one, "talivo-cy"), "held here at once"
                    await asyncio.sleep(5 * REFRESH)
                    await one.settle()
                events = {entry["event"] for entry in logs}
                assert "daily_limit_not_shared" in events, logs
                assert not holds(other, "talivo-cy"), "the other cannot have learned it"

                cut.restore()  # the refresher writes what it could not
                await eventually(lambda: holds(other, "talivo-cy"), timeout=15)
                assert holds(one, "talivo-cy")
        finally:
            await cut_pool.close()
            await asyncio.sleep(0.1)  # the forwarder sees its connections end before it stops


async def test_a_restarted_replica_loads_the_holds_from_the_table(
    pools: tuple[Pool, Pool], table: AsyncConnection
) -> None:
    resets_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    before = SharedDailyLimits(pools[0], refresh_seconds=REFRESH)
    async with before.running():
        before.reached("talivo-dana", resets_at)
    assert await stored(table, "talivo-dana") == resets_at, "written by the end of running()"
    await table.execute(
        "INSERT INTO zoom_daily_limits (user_id, until)"
        " VALUES ('talivo-past', now() - '1s'::interval)"
    )

    after = SharedDailyLimits(pools[0], refresh_seconds=60)  # no refresh but the first load
    async with after.running():
        assert holds(after, "talivo-dana")
        assert not holds(after, "talivo-eve") and not holds(after, "talivo-past")
        with pytest.raises(ZoomDailyLimitReached) as held:
            after.check("talivo-dana", datetime.now(UTC))
        assert held.value.resets_at == resets_at


async def test_the_later_reset_wins_and_rows_long_past_are_deleted(
    pools: tuple[Pool, Pool], table: AsyncConnection
) -> None:
    earlier = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    later = earlier + timedelta(hours=1)
    one = SharedDailyLimits(pools[0], keep_seconds=3600)
    other = SharedDailyLimits(pools[1], keep_seconds=3600)
    one.reached("talivo-fay", later)
    await one.settle()
    other.reached("talivo-fay", earlier)
    await other.settle()
    assert await stored(table, "talivo-fay") == later
    await other.refresh()
    with pytest.raises(ZoomDailyLimitReached) as held:
        other.check("talivo-fay", datetime.now(UTC))
    assert held.value.resets_at == later

    await table.execute(
        "INSERT INTO zoom_daily_limits (user_id, until) VALUES"
        " ('talivo-old', now() - '2 hours'::interval),"
        " ('talivo-recent', now() - '10 minutes'::interval)"
    )
    assert await one.prune() == 1
    assert await stored(table, "talivo-old") is None
    assert await stored(table, "talivo-recent") is not None
    assert await stored(table, "talivo-fay") == later


async def test_the_app_shares_the_limits_unless_told_process_and_stops_the_refresher(
    database_url: str, pools: tuple[Pool, Pool]
) -> None:
    env = {"DATABASE_URL": database_url, "ZOOM_DAILY_LIMIT_REFRESH_SECONDS": "0.2"}

    def refreshers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "daily-limits-refresher"]

    assert refreshers() == []
    async with AsyncExitStack() as stack:
        shared = await daily_limits(load_settings(env), pools[0], stack)
        assert isinstance(shared, SharedDailyLimits)
        assert len(refreshers()) == 1
    assert refreshers() == [], "stopped when the stack closed"

    async with AsyncExitStack() as stack:
        alone = await daily_limits(
            load_settings({**env, "ZOOM_RATE_LIMIT_SCOPE": "process"}), pools[0], stack
        )
        assert type(alone) is DailyLimits and refreshers() == []


def test_the_refresh_period_is_a_positive_setting() -> None:
    assert load_settings({}).zoom_daily_limit_refresh_seconds == 5.0
    assert (
        load_settings({"ZOOM_DAILY_LIMIT_REFRESH_SECONDS": "1.5"}).zoom_daily_limit_refresh_seconds
        == 1.5
    )
    for wrong in ("0", "-1", "soon"):
        with pytest.raises(ConfigError) as refused:
            load_settings({"ZOOM_DAILY_LIMIT_REFRESH_SECONDS": wrong})
        assert refused.value.problems[0].startswith(
            "config error: ZOOM_DAILY_LIMIT_REFRESH_SECONDS"
        ), refused.value.problems
