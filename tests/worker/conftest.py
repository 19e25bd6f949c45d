"""A worker process against the real broker, Postgres and the Zoom emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from devservices import KafkaService
from devservices.demo import connect_via_oauth
from devservices.kafka import create_topics
from devservices.zoom_emulator import ZoomEmulator
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from tests.worker.harness import (
    CRASHING_RUN,
    PARTITIONS,
    Results,
    Sender,
    Topics,
    WorkerProcess,
    processed,
    until,
)
from token_store import KeyRing, TokenStore, ZoomOAuth
from token_store.crypto import generate_key
from worker.runtime.http import http_client

CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
KEYS = f"k1:{generate_key()}"


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emulator:
        yield emulator


@dataclass
class Pipeline:
    topics: Topics
    env: dict[str, str]
    zoom: ZoomEmulator
    store: TokenStore
    results: Results
    sender: Sender
    zoom_users: dict[str, str]
    port: int = 0
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, *, crash_at: str | None = None, **extra_env: str) -> WorkerProcess:
        """A worker process (not started); ``crash_at`` (``step`` or ``step:N``) makes it the
        dev tooling's crashing worker, which SIGKILLs itself there."""
        if crash_at is None:
            worker = WorkerProcess({**self.env, **extra_env})
        else:
            crash_env = {**self.env, **extra_env, "ZOOM_WORKER_CRASH_AT": crash_at}
            worker = WorkerProcess(crash_env, command=CRASHING_RUN)
        self.workers.append(worker)
        return worker

    async def drained(self, worker_port: int, timeout: float = 30) -> None:
        """Wait until the worker on ``worker_port`` has finished every message sent."""
        url = f"http://127.0.0.1:{worker_port}/metrics"
        await until(lambda: processed(url) >= self.sender.sent, timeout=timeout)

    async def connect(self, user_id: str, email: str | None = None) -> str:
        zoom_user = await connect_via_oauth(
            self.store, self.zoom, user_id, email or f"{user_id}-{len(self.zoom_users)}@zoom.test"
        )
        self.zoom_users[user_id] = zoom_user
        return zoom_user


async def make_pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator, prefix: str, group: str
) -> AsyncIterator[Pipeline]:
    topics = Topics(prefix)
    await create_topics(kafka.bootstrap_servers, topics.all(), partitions=PARTITIONS)
    env = {
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_GROUP_ID": group,
        "KAFKA_ENABLE_IDEMPOTENCE": str(kafka.supports_idempotence).lower(),
        "DATABASE_URL": database_url,
        "TOKEN_ENCRYPTION_KEYS": KEYS,
        "ZOOM_CLIENT_ID": CLIENT_ID,
        "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
        "ZOOM_API_BASE_URL": zoom.api_base_url,
        "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
        "HTTP_PORT": "0",
        "LOG_LEVEL": "INFO",
        "ZOOM_RETRY_BUDGET_SECONDS": "2",
        "SHUTDOWN_GRACE_SECONDS": "10",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        # A killed worker's leases run out within the tests' patience (renewed every second
        # while held, so only a dead or stalled holder loses one).
        "LEASE_SECONDS": "4",
    }
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(database_url, open=False)
    await pool.open()
    http = http_client()
    oauth = ZoomOAuth(http, zoom.oauth_base_url, zoom.api_base_url, CLIENT_ID, CLIENT_SECRET)
    store = TokenStore(pool, KeyRing.parse(KEYS), oauth)
    results = Results(kafka.bootstrap_servers, topics)
    sender = Sender(kafka.bootstrap_servers, topics)
    await results.start()
    await sender.start()
    pipeline = Pipeline(topics, env, zoom, store, results, sender, {})
    try:
        yield pipeline
    finally:
        for worker in pipeline.workers:  # a failed test may have left one running
            worker.stop()
        await sender.stop()
        await results.stop()
        await http.aclose()
        await pool.close()
