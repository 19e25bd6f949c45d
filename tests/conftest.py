"""Fixtures: one broker and one Postgres per test session, isolated names per test.

Services come from devservices (env, then testcontainers, then embedded). Each test module
gets a fresh, migrated database; each test gets its own topic names and group id.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

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


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaService]:
    with kafka_service() as service:
        yield service


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
