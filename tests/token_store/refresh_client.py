"""A separate process asking for one user's token from many tasks at once (for the tests).

Reads its configuration from the environment, prints ``ready``, waits for a line on stdin, runs
``TASKS`` concurrent ``get_access_token`` calls and prints one JSON list of token digests
(sha256, never the tokens).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys

import httpx
from psycopg_pool import AsyncConnectionPool

from token_store import KeyRing, TokenStore, ZoomOAuth
from worker.runtime import logging as worker_logging


async def main() -> None:
    worker_logging.configure("DEBUG", "json")  # logs to stderr; stdout carries the answer
    env = os.environ
    async with (
        AsyncConnectionPool(env["DSN"], min_size=1, max_size=4, open=False) as pool,
        httpx.AsyncClient() as http,
    ):
        oauth = ZoomOAuth(
            http, env["OAUTH_BASE"], env["API_BASE"], env["CLIENT_ID"], env["CLIENT_SECRET"]
        )
        store = TokenStore(pool, KeyRing.parse(env["KEYS"]), oauth)
        await pool.wait()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        grants = await asyncio.gather(
            *(store.get_access_token(env["USER_ID"]) for _ in range(int(env["TASKS"])))
        )
    print(json.dumps([hashlib.sha256(g.access_token.encode()).hexdigest() for g in grants]))


if __name__ == "__main__":
    asyncio.run(main())
