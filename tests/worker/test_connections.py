"""Database connections do not grow with concurrency, and the worker runs behind PgBouncer.

A worker with ``MAX_IN_FLIGHT=128`` and Zoom answering creates in 200 ms keeps 128 messages in
flight; its connections are counted in ``pg_stat_activity`` (``application_name`` is
``zoom-worker``) every 20 ms throughout: never more than ``DATABASE_POOL_SIZE`` (16), while
every event is linked once. The same worker then runs through a real PgBouncer in transaction
mode (Debian's ``pgbouncer``, three server connections), with
``DATABASE_PREPARED_STATEMENTS=false``: every event linked once, and two replicas through it
never act on one event at once (one meeting per event).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from devservices import KafkaService
from devservices._process import free_port, wait_until
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event
from tests.worker.test_outages import all_linked_once

CREATE = "POST /v2/users/{userId}/meetings"
POOL = 16


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"c-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        yield p


@pytest.fixture(autouse=True)
def calm_zoom(zoom: ZoomEmulator) -> Iterator[None]:
    zoom.faults = []
    yield
    zoom.faults = []


def backlog(prefix: str, organizers: list[str], events: int) -> list[dict[str, Any]]:
    sent = []
    for i in range(events):
        body = event(f"{prefix}-{i}-{uuid.uuid4().hex[:6]}", 1, organizers[i % len(organizers)])
        body["title"] = f"{body['event_id']} interview"
        sent.append(body)
    return sent


async def peak_connections(database_url: str, done: asyncio.Event) -> int:
    """The most ``zoom-worker`` connections to this database seen at once until ``done``."""
    name = urlsplit(database_url).path.lstrip("/")
    peak = 0
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while not done.is_set():
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'zoom-worker'",
                (name,),
            )
            row = await cursor.fetchone()
            peak = max(peak, row[0] if row else 0)
            await asyncio.sleep(0.02)
    return peak


async def test_connections_stay_at_the_pool_size_with_128_in_flight(
    pipeline: Pipeline, database_url: str
) -> None:
    organizers = [f"cx{i}-{uuid.uuid4().hex[:4]}" for i in range(16)]
    for organizer in organizers:
        await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=200)]
    port = free_port()
    worker = pipeline.worker(
        HTTP_PORT=str(port),
        MAX_IN_FLIGHT="128",
        MAX_IN_FLIGHT_PER_ORGANIZER="8",
        DATABASE_POOL_SIZE=str(POOL),
    )
    worker.start()
    done = asyncio.Event()
    sampler = asyncio.create_task(peak_connections(database_url, done))
    try:
        sent = backlog("conn", organizers, 384)
        await pipeline.sender.send_all(("created", body) for body in sent)
        await all_linked_once(pipeline, sent, timeout=120)
    finally:
        done.set()
        peak = await sampler
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    print(f"\npeak connections of one replica at MAX_IN_FLIGHT=128: {peak}")
    assert 0 < peak <= POOL


# -- PgBouncer --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test database; its URL."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs PgBouncer (apt-get install pgbouncer; make does it)")
        pytest.skip("no pgbouncer binary (Debian: apt-get install pgbouncer)")
    parts = urlsplit(database_url)
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="talivo-pgbouncer-"))
    folder.chmod(0o755)
    config = folder / "pgbouncer.ini"
    users = folder / "users.txt"
    users.write_text(f'"{parts.username}" ""\n')
    config.write_text(
        "[databases]\n"
        f"* = host={parts.hostname} port={parts.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\n"
        "pool_mode = transaction\ndefault_pool_size = 3\nmax_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    for path in (config, users):
        path.chmod(0o644)
    command = [binary, str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # PgBouncer refuses to run as root
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)  # its log file
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))

    def answers() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=1, prepare_threshold=None):
                return True
        except psycopg.OperationalError:
            return False

    try:
        wait_until(answers, timeout=20, what="PgBouncer")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


async def test_two_replicas_work_behind_pgbouncer_in_transaction_mode(
    pipeline: Pipeline, pgbouncer: str
) -> None:
    organizers = [f"pb{i}-{uuid.uuid4().hex[:4]}" for i in range(6)]
    for organizer in organizers:
        await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=50)]
    env = {"DATABASE_URL": pgbouncer, "DATABASE_PREPARED_STATEMENTS": "false"}
    workers = [pipeline.worker(HTTP_PORT=str(free_port()), **env) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        sent = backlog("pgb", organizers, 120)
        await pipeline.sender.send_all(("created", body) for body in sent)
        # The second worker joins as the backlog flows: the group rebalances mid-stream.
        await all_linked_once(pipeline, sent, timeout=120)
    finally:
        codes = [worker.stop() for worker in workers]
    for worker, code in zip(workers, codes, strict=True):
        log = worker.log()
        assert code == 0, log[-3000:]
        for sign in ("prepared statement", "PoolTimeout", '"poison_message"', "LeaseLost"):
            assert sign not in log, (sign, log[-2000:])
