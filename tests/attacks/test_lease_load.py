"""Leases under load, real worker processes: connections per replica at MAX_IN_FLIGHT=128 with
two replicas (pg_stat_activity by DATABASE_APPLICATION_NAME), and one busy organizer's creates
(serialised by the host's create lease, which waiters poll for)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import psycopg
from devservices.zoom_emulator.faults import Fault

from tests.attacks.conftest import CREATE, start
from tests.worker.conftest import Pipeline
from tests.worker.harness import event
from tests.worker.test_outages import all_linked_once


def backlog(prefix: str, organizers: list[str], n: int) -> list[dict[str, Any]]:
    sent = []
    for i in range(n):
        body = event(f"{prefix}-{i}-{uuid.uuid4().hex[:6]}", 1, organizers[i % len(organizers)])
        body["title"] = f"{body['event_id']} interview"
        sent.append(body)
    return sent


async def sample(database_url: str, names: list[str], done: asyncio.Event) -> dict[str, int]:
    db = urlsplit(database_url).path.lstrip("/")
    peak = dict.fromkeys(names, 0)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while not done.is_set():
            cur = await conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s"
                " GROUP BY 1",
                (db,),
            )
            for name, count in await cur.fetchall():
                if name in peak:
                    peak[name] = max(peak[name], count)
            await asyncio.sleep(0.02)
    return peak


async def test_two_replicas_at_128_in_flight_stay_at_their_pool_size(
    pipeline: Pipeline, database_url: str
) -> None:
    organizers = [f"cx{i}-{uuid.uuid4().hex[:4]}" for i in range(16)]
    for o in organizers:
        await pipeline.connect(o)
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=200)]
    tag = uuid.uuid4().hex[:4]
    names = [f"atk-a-{tag}", f"atk-b-{tag}"]
    workers = [
        start(
            pipeline,
            MAX_IN_FLIGHT="128",
            DATABASE_POOL_SIZE="16",
            LEASE_SECONDS="30",
            DATABASE_APPLICATION_NAME=name,
        )[0]
        for name in names
    ]
    done = asyncio.Event()
    sampler = asyncio.create_task(sample(database_url, names, done))
    started = time.monotonic()
    try:
        sent = backlog("cc", organizers, 384)
        await pipeline.sender.send_all(("created", b) for b in sent)
        await all_linked_once(pipeline, sent, timeout=120)
    finally:
        took = time.monotonic() - started
        done.set()
        peak = await sampler
        codes = [w.stop() for w in workers]
    print(f"\npeak connections per replica: {peak}; 384 events in {took:.1f}s")
    for w in workers:
        log = w.log()
        print(
            "log signs:",
            {
                s: log.count(s)
                for s in (
                    "LeaseLost",
                    "PoolTimeout",
                    "lease_not_released",
                    "lease_not_renewed",
                    "poison_message",
                )
            },
        )
    assert codes == [0, 0]
    assert all(0 < p <= 16 for p in peak.values()), peak


async def test_one_busy_organizers_creates_are_not_slowed_by_lease_polling(
    pipeline: Pipeline,
) -> None:
    busy = f"busy-{uuid.uuid4().hex[:4]}"
    spread = [f"sp{i}-{uuid.uuid4().hex[:4]}" for i in range(8)]
    for o in [busy, *spread]:
        await pipeline.connect(o)
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=100)]
    w, _ = start(pipeline, LEASE_SECONDS="30")
    try:
        warm = backlog("warm", spread, 8)
        await pipeline.sender.send_all(("created", b) for b in warm)
        await all_linked_once(pipeline, warm, timeout=60)
        timings = {}
        for label, organizers in (("one organizer", [busy]), ("eight organizers", spread)):
            sent = backlog(label[:3], organizers, 40)
            started = time.monotonic()
            await pipeline.sender.send_all(("created", b) for b in sent)
            await all_linked_once(pipeline, sent, timeout=90)
            timings[label] = time.monotonic() - started - 1.0  # all_linked_once settles 1 s
    finally:
        w.stop()
    print(f"\n40 creates at 100 ms each: {timings}")
    # Serialised per host, the floor is 40 x (100 ms + a few round trips) ~ 5 s.
    assert timings["one organizer"] < 8.0, timings
