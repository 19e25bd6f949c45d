"""``python -m tests.attacks.flood_client``: one "replica" flooding one Zoom account through the
shared per-account limiter (its own pool and event loop), printing one JSON line at the end."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
from psycopg_pool import AsyncConnectionPool

from token_store.models import ZoomGrant
from worker.runtime.shared_limits import SharedRateLimiter
from worker.zoom import BucketConfig, ZoomMeetings
from worker.zoom.errors import ZoomRateLimited


class Tokens:
    def __init__(self, grant: ZoomGrant) -> None:
        self.grant = grant

    async def get_access_token(self, user_id: str) -> ZoomGrant:
        return self.grant

    async def refresh_after_rejection(self, user_id: str, rejected: ZoomGrant) -> ZoomGrant:
        return self.grant


async def main(cfg: dict) -> None:
    grant = ZoomGrant(
        "u", cfg["zoom_user"], cfg["account"], cfg["token"], datetime.now(UTC) + timedelta(hours=1)
    )
    limits = {
        "Light": BucketConfig.under(cfg["light"]),
        "Medium": BucketConfig.under(cfg["medium"]),
    }
    sent: list[float] = []
    async with (
        AsyncConnectionPool(cfg["db"], min_size=2, max_size=4, open=False) as pool,
        httpx.AsyncClient(event_hooks={"request": [lambda r: _mark(sent)]}) as http,
    ):
        await pool.wait()
        client = ZoomMeetings(
            http,
            api_base_url=cfg["api"],
            tokens=Tokens(grant),
            limiter=SharedRateLimiter(pool, limits),
            retry_budget_seconds=0.01,
        )
        start_at = cfg["start_at"]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.time() + cfg["seconds"]
        limited = 0

        async def one() -> None:
            nonlocal limited
            while time.time() < deadline:
                try:
                    await client.get_meeting("u", cfg["meeting"])
                except ZoomRateLimited:
                    limited += 1

        await asyncio.gather(*(one() for _ in range(cfg["concurrency"])))
    print(json.dumps({"sent": sent, "limited": limited}))


async def _mark(sent: list[float]) -> None:
    sent.append(time.time())


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
