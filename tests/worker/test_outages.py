"""Dependency outages are waited out, not crashed through; token refreshes never starve the pool.

Each test runs a worker process against the session's broker, Postgres and the Zoom emulator:

- Postgres goes away mid-backlog: the worker reaches it through a TCP forwarder in this test
  (``Cut``), which drops every connection and refuses new ones for a while;
- the broker goes away mid-backlog: the session's own Apache Kafka is stopped and started
  again (skipped when the broker is not one this run started);
- sixteen organizers' tokens expire at once with Zoom's OAuth answering after 4 s, sixteen
  messages in flight and a 3 s wait for a pooled connection.

During an outage the worker stays up, ``/healthz`` answers 200 and ``/readyz`` 503, the
dependency's gauge reads 0, no new message is started (the engine's buffer fills and fetching
pauses); afterwards it resumes by itself: every event is linked once, no meeting is made twice,
nothing is parked. Each test prints what it measured (``-s`` shows it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tests.worker.conftest import CLIENT_ID, CLIENT_SECRET, KEYS, Pipeline, make_pipeline
from tests.worker.harness import WorkerProcess, event
from token_store import KeyRing, TokenStore, ZoomOAuth
from worker.runtime.app import refresh_slots
from worker.runtime.http import http_client

ORGANIZERS = ("ana", "bob", "cy")
OAUTH_TOKEN = "POST /oauth/token"
CREATE = "POST /v2/users/{userId}/meetings"


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"o-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        for organizer in ORGANIZERS:
            await p.connect(organizer)
        zoom.daily_limit = 100_000
        yield p


@pytest.fixture(autouse=True)
def no_faults(zoom: ZoomEmulator) -> Iterator[None]:
    zoom.faults = []
    yield
    zoom.faults = []


# -- a TCP forwarder the test can cut -----------------------------------------------------


class Cut:
    """Forwards 127.0.0.1:``port`` to ``target`` on a thread of its own (so nothing the test
    blocks on slows it); ``cut()`` resets every connection and refuses new ones until
    ``restore()``."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> Cut:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *_: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def _call(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._live):
            writer.transport.abort()  # a reset, as a dead host or a killed proxy gives
        self._live.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._live |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._live -= {writer, up_writer}


def through(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


# -- the worker from outside --------------------------------------------------------------


async def status(port: int, path: str) -> int:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{port}{path}")).status_code
    except httpx.TransportError:
        return 0


async def metrics(port: int) -> dict[str, float]:
    """Every sample of the worker's /metrics, by its line's name and labels."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def wait_status(port: int, path: str, code: int, timeout: float) -> float:
    """Seconds until ``path`` answers ``code``."""
    started = time.monotonic()
    while await status(port, path) != code:
        assert time.monotonic() - started < timeout, f"{path} never answered {code}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def buffer_full(samples: dict[str, float], max_buffered: int) -> bool:
    return max_buffered - max_buffered // 4 < samples["zoom_worker_in_flight"] <= max_buffered


def handled(samples: dict[str, float]) -> float:
    """Source messages finished, whatever the outcome."""
    return sum(v for k, v in samples.items() if k.startswith("zoom_worker_messages_total{"))


def start(pipeline: Pipeline, **env: str) -> tuple[WorkerProcess, int]:
    port = free_port()
    worker = pipeline.worker(HTTP_PORT=str(port), **env)
    worker.start()
    return worker, port


def alive(worker: WorkerProcess) -> bool:
    return worker.process is not None and worker.process.poll() is None


def sources(pipeline: Pipeline, count: int, title: str = "interview") -> list[dict[str, Any]]:
    ids = [f"ev-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    return [event(ev, 1, ORGANIZERS[i % 3], title=f"{ev} {title}") for i, ev in enumerate(ids)]


async def all_linked_once(pipeline: Pipeline, sent: list[dict[str, Any]], timeout: float) -> None:
    """Every source answered by a meeting.linked; one meeting per event on Zoom; nothing
    failed or parked."""
    wanted = {body["message_id"] for body in sent}

    def answered() -> bool:
        seen = {r["correlation_id"] for _, r, _ in pipeline.results.seen if r is not None}
        return wanted <= seen

    await pipeline.results.until(answered, timeout=timeout)
    await pipeline.results.settle(1.0)
    for body in sent:
        ev, organizer = body["event_id"], body["organizer"]["user_id"]
        results = pipeline.results.for_event(ev)
        assert results and all(r["action"] == "created" for r in results), results
        assert len({r["message_id"] for r in results}) == 1, results  # copies share their id
        meetings = [m for m in pipeline.zoom.meetings(pipeline.zoom_users[organizer])
                    if m.topic.startswith(ev)]  # fmt: skip
        assert len(meetings) == 1, (ev, meetings)
        assert {r["meeting"]["id"] for r in results} == {meetings[0].id}
    parked = [h for h in pipeline.results.dead_letters()
              if any(h["__value__"].find(b["event_id"].encode()) >= 0 for b in sent)]  # fmt: skip
    assert parked == []


@contextmanager
def quiet(logger: str) -> Iterator[None]:
    """This process's own clients log every failed reconnect during an outage."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


# -- Postgres ------------------------------------------------------------------------------


async def test_a_postgres_outage_mid_backlog_is_waited_out(
    pipeline: Pipeline, database_url: str
) -> None:
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=200)]
    backlog, during = sources(pipeline, 40), sources(pipeline, 30)
    db = urlsplit(database_url)
    assert db.hostname is not None and db.port is not None
    with Cut(db.hostname, db.port) as cut:
        worker, port = start(
            pipeline,
            DATABASE_URL=through(database_url, cut.port),
            MAX_IN_FLIGHT="4",
            MAX_BUFFERED_MESSAGES="8",
            DATABASE_POOL_TIMEOUT_SECONDS="3",
        )
        try:
            await wait_status(port, "/readyz", 200, timeout=60)
            await pipeline.sender.send_all(("created", body) for body in backlog)
            await pipeline.results.until(lambda: len(pipeline.results.seen) >= 5, timeout=60)
            cut.cut()
            cut_at = time.monotonic()
            await pipeline.sender.send_all(("created", body) for body in during)

            seen_503 = await wait_status(port, "/readyz", 503, timeout=10)
            assert await status(port, "/healthz") == 200
            await asyncio.sleep(4)  # the outage goes on
            samples = await metrics(port)
            assert samples['zoom_worker_dependency_up{dependency="database"}'] == 0
            assert samples['zoom_worker_dependency_up{dependency="broker"}'] == 1
            assert samples['zoom_worker_dependency_outages_total{dependency="database"}'] == 1
            # Taken and waiting: the buffer is full (the engine refills it only once a quarter
            # is free), fetching has paused, the rest of the backlog waits in Kafka.
            assert buffer_full(samples, 8)
            assert samples["zoom_worker_active"] == 0  # nothing runs while it is down
            finished = handled(samples)
            await asyncio.sleep(1)
            assert alive(worker)
            assert await status(port, "/readyz") == 503
            assert handled(await metrics(port)) == finished
            down_for = time.monotonic() - cut_at

            answered = len(pipeline.results.seen)
            cut.restore()
            restored_at = time.monotonic()
            ready_after = await wait_status(port, "/readyz", 200, timeout=30)
            await pipeline.results.until(lambda: len(pipeline.results.seen) > answered, timeout=30)
            flowing_after = time.monotonic() - restored_at
            sent = backlog + during
            await all_linked_once(pipeline, sent, timeout=90)
            drained_after = time.monotonic() - restored_at
            samples = await metrics(port)
            assert samples['zoom_worker_dependency_up{dependency="database"}'] == 1
            assert not any(k.startswith("zoom_worker_poison_messages_total{") for k in samples)
        finally:
            code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    log = worker.log()
    assert log.count('"dependency_down"') == 1 and log.count('"dependency_up"') == 1, log[-3000:]
    print(
        f"\npostgres outage: /readyz 503 after {seen_503:.1f} s, down {down_for:.1f} s; "
        f"after restore: /readyz 200 in {ready_after:.1f} s, results flowing in "
        f"{flowing_after:.1f} s, {len(sent)} events drained in {drained_after:.1f} s"
    )


# -- the broker ----------------------------------------------------------------------------


async def test_a_broker_outage_mid_backlog_is_waited_out(
    pipeline: Pipeline, kafka: KafkaService
) -> None:
    broker = kafka.broker
    if broker is None:
        pytest.skip(f"the broker ({kafka.source}) is not one this run can stop and start")
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=200)]
    backlog = sources(pipeline, 40)
    worker, port = start(pipeline, MAX_IN_FLIGHT="4", MAX_BUFFERED_MESSAGES="8")
    try:
        with quiet("aiokafka"):
            await wait_status(port, "/readyz", 200, timeout=60)
            await pipeline.sender.send_all(("created", body) for body in backlog)
            await pipeline.results.until(lambda: len(pipeline.results.seen) >= 5, timeout=60)
            try:
                await asyncio.to_thread(broker.stop)  # SIGTERM: a clean, controlled shutdown
                stopped_at = time.monotonic()
                seen_503 = await wait_status(port, "/readyz", 503, timeout=15)
                assert await status(port, "/healthz") == 200
                await asyncio.sleep(4)
                samples = await metrics(port)
                assert samples['zoom_worker_dependency_up{dependency="broker"}'] == 0
                assert samples['zoom_worker_dependency_outages_total{dependency="broker"}'] == 1
                # Messages under way wait inside their publish (the producer holds the batch
                # until the broker is back, or its request timeout); none finishes, none starts.
                assert samples["zoom_worker_active"] <= 4
                assert buffer_full(samples, 8)
                finished = handled(samples)
                await asyncio.sleep(1)
                assert handled(await metrics(port)) == finished
                assert alive(worker)
                down_for = time.monotonic() - stopped_at
            finally:
                # On this (the main) thread: the JVM dies with the thread that starts it.
                broker.start()
            started_at = time.monotonic()
            ready_after = await wait_status(port, "/readyz", 200, timeout=60)
            await all_linked_once(pipeline, backlog, timeout=90)
            drained_after = time.monotonic() - started_at
            samples = await metrics(port)
            assert samples['zoom_worker_dependency_up{dependency="broker"}'] == 1
            assert not any(k.startswith("zoom_worker_poison_messages_total{") for k in samples)
    finally:
        if broker.pid is None:  # whatever happened, the session's broker runs again
            broker.start()
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    log = worker.log()
    assert '"poison_message"' not in log and '"handler_failed"' not in log
    print(
        f"\nbroker outage: /readyz 503 after {seen_503:.1f} s, down {down_for:.1f} s; after "
        f"restart: /readyz 200 in {ready_after:.1f} s, {len(backlog)} events drained in "
        f"{drained_after:.1f} s"
    )


# -- token refreshes and the pool ----------------------------------------------------------

IN_FLIGHT = 16
OAUTH_DELAY_MS = 4000
POOL_WAIT = "3"


async def expire_tokens(database_url: str, users: list[str]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE zoom_tokens SET access_expires_at = now() - interval '1 minute' "
            "WHERE user_id = ANY(%s)",
            (users,),
        )


async def test_concurrent_token_refreshes_never_starve_the_pool(
    pipeline: Pipeline, database_url: str
) -> None:
    """Sixteen messages in flight, each organizer's token expired, Zoom's OAuth slow (4 s) and
    a 3 s wait for a pooled connection. When every message held its event's connection and
    needed one more across the OAuth call, a pool of in flight + 8 starved. Now the guards hold
    leases, not connections, and refreshes queue in the process (``refresh_slots``): a pool of
    twelve, fewer than the messages in flight, never times out."""
    organizers = [f"r{i}-{uuid.uuid4().hex[:6]}" for i in range(IN_FLIGHT)]
    for organizer in organizers:
        await pipeline.connect(organizer)
    await expire_tokens(database_url, organizers)
    pipeline.zoom.faults = [Fault(kind="latency", endpoint=OAUTH_TOKEN, latency_ms=OAUTH_DELAY_MS)]

    # The old sizing, in this process: sixteen held connections stand for the events' guards.
    old: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        database_url, min_size=1, max_size=IN_FLIGHT + 8, timeout=float(POOL_WAIT), open=False
    )
    await old.open()
    http = http_client()
    try:
        guards = [await old.getconn() for _ in range(IN_FLIGHT)]
        store = token_store(pipeline, old, http)
        answers = await asyncio.gather(
            *(store.get_access_token(o) for o in organizers), return_exceptions=True
        )
        for conn in guards:
            await old.putconn(conn)
    finally:
        await http.aclose()
        await old.close()
    starved = [a for a in answers if isinstance(a, PoolTimeout)]
    assert len(starved) == IN_FLIGHT - 8, answers  # eight refreshed; the rest timed out waiting

    # The worker with a pool smaller than the messages in flight: every message linked.
    pool = 12
    assert refresh_slots(pool) == 8
    await expire_tokens(database_url, organizers)
    worker, port = start(
        pipeline,
        MAX_IN_FLIGHT=str(IN_FLIGHT),
        DATABASE_POOL_TIMEOUT_SECONDS=POOL_WAIT,
        DATABASE_POOL_SIZE=str(pool),
    )
    try:
        await wait_status(port, "/readyz", 200, timeout=60)
        sent = [event(f"ev-{uuid.uuid4().hex[:10]}", 1, o) for o in organizers]
        for body in sent:
            body["title"] = f"{body['event_id']} interview"
        started = time.monotonic()
        await pipeline.sender.send_all(("created", body) for body in sent)
        await all_linked_once(pipeline, sent, timeout=60)
        took = time.monotonic() - started
        samples = await metrics(port)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    log = worker.log()
    for sign in ("PoolTimeout", '"message_retry"', '"dependency_down"', '"poison_message"'):
        assert sign not in log, (sign, log[-3000:])
    assert samples['zoom_token_refreshes_total{outcome="refreshed"}'] == IN_FLIGHT
    # Eight refreshes side by side, then the other eight: two rounds, not sixteen.
    assert took < 3 * OAUTH_DELAY_MS / 1000
    print(
        f"\n{IN_FLIGHT} refreshes at once, OAuth {OAUTH_DELAY_MS} ms: connections held per "
        f"message, {IN_FLIGHT + 8} connections -> {len(starved)} PoolTimeout; leases and a pool "
        f"of {pool} -> all {IN_FLIGHT} linked in {took:.1f} s"
    )


def token_store(
    pipeline: Pipeline, pool: AsyncConnectionPool[AsyncConnection], http: httpx.AsyncClient
) -> TokenStore:
    """A token store like the pipeline's (same keys, same Zoom), on ``pool``."""
    zoom = pipeline.zoom
    oauth = ZoomOAuth(http, zoom.oauth_base_url, zoom.api_base_url, CLIENT_ID, CLIENT_SECRET)
    return TokenStore(pool, KeyRing.parse(KEYS), oauth)
