"""The database pool's figures on /metrics, read from psycopg_pool at each scrape (Postgres)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from prometheus_client import REGISTRY

from worker.runtime.config import load_settings
from worker.runtime.resources import Pool, open_pool


def connections(state: str) -> float | None:
    return REGISTRY.get_sample_value("zoom_worker_db_pool_connections", {"state": state})


async def test_the_pool_figures_follow_what_is_lent_and_waited_for(database_url: str) -> None:
    settings = load_settings({"DATABASE_URL": database_url}, ["database"])
    async with AsyncExitStack() as stack:
        pool = await open_pool(stack, settings, 2, wait_seconds=5)
        await pool.wait()  # min_size 2: both open
        assert (connections("size"), connections("in_use"), connections("idle")) == (2, 0, 2)
        assert REGISTRY.get_sample_value("zoom_worker_db_pool_max_connections") == 2

        async with pool.connection(), pool.connection():
            assert (connections("in_use"), connections("idle")) == (2, 0)
            third = asyncio.create_task(_borrow(pool))
            await asyncio.sleep(0.2)
            assert REGISTRY.get_sample_value("zoom_worker_db_pool_waiting") == 1
        await asyncio.wait_for(third, 5)
        assert REGISTRY.get_sample_value("zoom_worker_db_pool_waiting") == 0
        assert connections("in_use") == 0
    assert connections("size") is None, "a closed pool leaves no series"


async def _borrow(pool: Pool) -> None:
    async with pool.connection():
        pass
