"""What the long-running commands (``run``, ``serve``) open the same way."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from token_store import TokenStore, ZoomOAuth
from worker.runtime.config import ServiceSettings

Pool = AsyncConnectionPool[AsyncConnection]


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the graceful-shutdown trigger."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def open_pool(stack: AsyncExitStack, settings: ServiceSettings, max_size: int) -> Pool:
    """A connection pool, open and ready (or failing within 30 s), closed with ``stack``."""
    pool: Pool = AsyncConnectionPool(
        settings.dsn(), min_size=min(2, max_size), max_size=max_size, open=False
    )
    await pool.open(wait=True, timeout=30)
    stack.push_async_callback(pool.close)
    return pool


def token_store(settings: ServiceSettings, pool: Pool, http: httpx.AsyncClient) -> TokenStore:
    secret = settings.zoom_client_secret
    oauth = ZoomOAuth(
        http,
        oauth_base_url=settings.zoom_oauth_base_url,
        api_base_url=settings.zoom_api_base_url,
        client_id=settings.zoom_client_id or "",
        client_secret=secret.get_secret_value() if secret else "",
    )
    return TokenStore(
        pool,
        settings.key_ring(),
        oauth,
        refresh_margin=timedelta(seconds=settings.token_refresh_margin_seconds),
    )


async def database_ready(pool: Pool) -> bool:
    async with pool.connection(timeout=2) as conn:
        await conn.execute("SELECT 1")
    return True
