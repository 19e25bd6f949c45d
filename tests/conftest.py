"""Fixtures: one broker and one Postgres per test session, isolated names per test.

Services come from devservices (env, then testcontainers, then a local Apache Kafka on the
JDK and embedded Postgres, Tansu only without a JDK). Under CI (``CI=true``) the run refuses
any broker that is not Apache Kafka. Each test module gets a fresh, migrated database; each
test gets its own topic names and group id. When tests failed, the local broker's log is
kept in ``test-logs/``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from devservices import (
    KafkaService,
    PostgresService,
    create_database,
    kafka_service,
    postgres_service,
)

import migrations

# Everything the suite printed or logged, for tests/zz_leaks (which runs last).
CAPTURED: list[str] = []
WORKER_LOGS: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    CAPTURED.extend((report.capstdout, report.capstderr, report.caplog))


KEPT_LOGS = Path(__file__).parents[1] / "test-logs"


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest) -> Iterator[KafkaService]:
    with kafka_service() as service:
        if os.environ.get("CI") == "true" and not service.is_apache_kafka:
            pytest.exit(f"CI must run on Apache Kafka, not {service.source}", returncode=3)
        yield service
        if request.session.testsfailed and service.broker is not None:
            KEPT_LOGS.mkdir(exist_ok=True)
            shutil.copy(service.broker.log_path, KEPT_LOGS / "kafka-server.log")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresService]:
    with postgres_service() as service:
        yield service


@pytest.fixture(scope="module")
def database_url(postgres: PostgresService, request: pytest.FixtureRequest) -> str:
    """A fresh database for this test module, with every migration applied."""
    name = f"t_{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:8]}"[:60]
    url = create_database(postgres.url, name)
    migrations.apply(url)
    return url


@pytest.fixture
def unique() -> str:
    """A short suffix that makes topic names and group ids unique to this test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def topic(kafka: KafkaService, unique: str) -> AsyncIterator[str]:
    from devservices.kafka import create_topics

    name = f"t-{unique}"
    await create_topics(kafka.bootstrap_servers, [name], partitions=3)
    yield name
