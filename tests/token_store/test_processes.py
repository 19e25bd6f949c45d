"""Two processes x twenty tasks want one user's expiring token: Zoom sees exactly one refresh."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
from devservices.zoom_emulator import Fault, ZoomEmulator
from psycopg_pool import AsyncConnectionPool

from token_store import TokenStore

from .conftest import CLIENT_ID, CLIENT_SECRET, connect_new_user, digest

ROOT = Path(__file__).resolve().parents[2]
TASKS = 20


async def test_two_processes_twenty_tasks_one_refresh(
    store: TokenStore,
    zoom: ZoomEmulator,
    pool: AsyncConnectionPool,
    database_url: str,
    key_spec: str,
    http: httpx.AsyncClient,
) -> None:
    await connect_new_user(store, zoom, "u-procs")
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE zoom_tokens SET access_expires_at = now() WHERE user_id = 'u-procs'"
        )
    # A slow token endpoint keeps the first refresh in flight while everyone else arrives.
    zoom.faults = [Fault(kind="latency", endpoint="POST /oauth/token", latency_ms=300)]
    before = zoom.calls("POST /oauth/token")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DSN": database_url,
        "KEYS": key_spec,
        "OAUTH_BASE": zoom.oauth_base_url,
        "API_BASE": zoom.api_base_url,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "USER_ID": "u-procs",
        "TASKS": str(TASKS),
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.token_store.refresh_client",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"ready"
        for proc in procs:  # start both at once
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(p.communicate(), 30) for p in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    zoom.faults = []

    assert [p.returncode for p in procs] == [0, 0]
    digests = [d for out, _ in outputs for d in json.loads(out)]
    logs = b"".join(err for _, err in outputs).decode()
    assert logs.count("zoom_token.refreshed") == 1
    assert all(secret not in logs for secret in zoom.issued_secrets())
    assert len(digests) == 2 * TASKS
    assert zoom.calls("POST /oauth/token") == before + 1
    stored = await store.get_access_token("u-procs")
    assert set(digests) == {digest(stored.access_token)}
    me = await http.get(
        f"{zoom.api_base_url}/users/me",
        headers={"Authorization": f"Bearer {stored.access_token}"},
    )
    assert me.status_code == 200
