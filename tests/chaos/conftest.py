"""The chaos suite: real worker processes on real services, with faults injected mid-stream.

Tests marked ``chaos`` take minutes, so they are skipped unless asked for: ``make chaos``
(``pytest -m chaos tests/chaos``) or ``CHAOS=1``. The fault proxy's own tests are not marked
and run in the normal suite.

Services (built on first use, once per session, and only for chaos tests):

- ``chaos_kafka``: an Apache Kafka broker of its own (``services.proxied_kafka``) that the
  worker reaches only through a ``FaultProxy``; the tests' own clients go direct.
- ``chaos_postgres``: an embedded Postgres cluster of its own that tests may kill and restart,
  with ``pg_proxy`` in front of it for the worker.
- ``chaos_zoom``: a Zoom emulator with limits raised (faults only where a test injects them),
  with ``zoom_proxy`` in front of it for the worker.

Each test gets a ``ChaosWorld``: fresh database, topics, group and organizers, and worker
settings pointing through the three proxies. Whatever a test broke is repaired after it
(proxies restored, broker and Postgres running, emulator faults cleared).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pytest
from devservices import create_database
from devservices.faultproxy import FaultProxy
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.models import Plan

import migrations
from tests.chaos.services import (
    ProxiedKafka,
    RestartablePostgres,
    proxied_kafka,
    restartable_postgres,
)
from tests.chaos.supervisor import Supervisor
from tests.worker.conftest import CLIENT_ID, CLIENT_SECRET, Pipeline, make_pipeline
from tests.worker.harness import Results, Topics

CHAOS_HINT = "chaos suite: run it with `make chaos` (pytest -m chaos tests/chaos) or CHAOS=1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: minutes-long fault-injection tests, skipped unless -m chaos or CHAOS=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHAOS") == "1" or "chaos" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason=CHAOS_HINT)
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chaos_kafka() -> Iterator[ProxiedKafka]:
    with proxied_kafka() as kafka:
        yield kafka


@pytest.fixture(scope="session")
def chaos_postgres() -> Iterator[RestartablePostgres]:
    with restartable_postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_proxy(chaos_postgres: RestartablePostgres) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", chaos_postgres.port, name="pg-proxy") as proxy:
        yield proxy


@pytest.fixture(scope="session")
def chaos_zoom() -> Iterator[ZoomEmulator]:
    with ZoomEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, seed=7) as zoom:
        yield zoom


@pytest.fixture(scope="session")
def zoom_proxy(chaos_zoom: ZoomEmulator) -> Iterator[FaultProxy]:
    port = urlsplit(chaos_zoom.base_url).port
    assert port is not None
    with FaultProxy("127.0.0.1", port, name="zoom-proxy") as proxy:
        yield proxy


def fast_zoom(zoom: ZoomEmulator) -> None:
    """No limits in the way of a big run (the worker still paces itself per account)."""
    zoom.faults = []
    zoom.daily_limit = 10**9
    plans: tuple[Plan, ...] = ("free", "pro", "business")
    for plan in plans:
        zoom.set_qps(plan, "Light", 100_000)
        zoom.set_qps(plan, "Medium", 100_000)


@pytest.fixture(autouse=True)
def quiet_kafka_clients() -> Iterator[None]:
    """While a broker is away this process's aiokafka clients log every failed reconnect."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        quiet.setLevel(level)


@dataclass
class ChaosWorld:
    pipeline: Pipeline
    kafka: ProxiedKafka
    postgres: RestartablePostgres
    pg_proxy: FaultProxy
    zoom: ZoomEmulator
    zoom_proxy: FaultProxy
    database_url: str  # direct, for the test's own reads
    prefix: str
    group: str
    supervisors: list[Supervisor] = field(default_factory=list)

    @property
    def results(self) -> Results:
        return self.pipeline.results

    @property
    def topics(self) -> Topics:
        return self.pipeline.topics

    @property
    def zoom_users(self) -> dict[str, str]:
        return self.pipeline.zoom_users

    @property
    def direct(self) -> str:
        return self.kafka.direct

    async def organizers(self, count: int, names: list[str] | None = None) -> list[str]:
        """Connect ``count`` organizers (each their own Zoom user and account) through OAuth."""
        names = names or [f"{self.prefix}-org{n:02d}" for n in range(count)]
        for name in names:
            await self.pipeline.connect(name, f"{uuid.uuid4().hex[:12]}@zoom.test")
        return names

    def supervisor(self, name: str = "worker", **env: str) -> Supervisor:
        supervisor = Supervisor(self.pipeline, env, name=name)
        self.supervisors.append(supervisor)
        return supervisor


def _through(url: str, proxy: FaultProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{proxy.address}"))


@pytest.fixture
async def world(
    chaos_kafka: ProxiedKafka,
    chaos_postgres: RestartablePostgres,
    pg_proxy: FaultProxy,
    chaos_zoom: ZoomEmulator,
    zoom_proxy: FaultProxy,
) -> AsyncIterator[ChaosWorld]:
    prefix = f"c{uuid.uuid4().hex[:8]}"
    database_url = create_database(chaos_postgres.url, f"chaos_{prefix}")
    migrations.apply(database_url)
    fast_zoom(chaos_zoom)
    group = f"g-{prefix}"
    async for pipeline in make_pipeline(
        chaos_kafka.service(), database_url, chaos_zoom, prefix, group
    ):
        pipeline.env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": chaos_kafka.via_proxy,
                "DATABASE_URL": _through(database_url, pg_proxy),
                "ZOOM_API_BASE_URL": f"http://{zoom_proxy.address}/v2",
                "ZOOM_OAUTH_BASE_URL": f"http://{zoom_proxy.address}",
                # Long enough to wait out the Zoom outages these tests make (a few seconds).
                "ZOOM_RETRY_BUDGET_SECONDS": "20",
                "MAX_IN_FLIGHT": "32",
                # The worker's own retries (and its breaker), on the tests' time scale.
                "RETRY_DELAYS_SECONDS": "1,2,5",
                "RETRY_POLL_SECONDS": "0.5",
                "BREAKER_PROBE_INTERVAL_SECONDS": "2",
            }
        )
        world = ChaosWorld(
            pipeline,
            chaos_kafka,
            chaos_postgres,
            pg_proxy,
            chaos_zoom,
            zoom_proxy,
            database_url,
            prefix,
            group,
        )
        try:
            yield world
        finally:
            # Repair whatever the test broke before the workers are stopped.
            for proxy in (chaos_kafka.proxy, pg_proxy, zoom_proxy):
                proxy.restore()
                proxy.delay(0)
            chaos_kafka.ensure_running()
            if not chaos_postgres.running:
                chaos_postgres.start()
            chaos_zoom.faults = []
            for supervisor in world.supervisors:
                await supervisor.stop()
