"""Each dev-service path that runs here really serves: a broker and a Postgres."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from devservices import KafkaService, PostgresService


async def test_broker_round_trip_with_group_commit(
    kafka: KafkaService, topic: str, unique: str
) -> None:
    await round_trip(kafka, topic, unique)


async def round_trip(kafka: KafkaService, topic: str, unique: str) -> None:
    """Produce, consume in a group, commit, and re-read from the committed offset."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for i in range(6):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k", partition=0)
    finally:
        await producer.stop()

    async def consume(n: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=f"g-{unique}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=2000,  # Tansu takes about half of it to form a group
            heartbeat_interval_ms=200,
        )
        await consumer.start()
        try:
            seen: list[bytes] = []
            while len(seen) < n:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen.extend(r.value for r in records if r.value is not None)
            seen = seen[:n]
            await consumer.commit({TopicPartition(topic, 0): 3})
            return seen
        finally:
            await consumer.stop()

    assert await consume(3) == [b"m0", b"m1", b"m2"]
    # A new member of the group starts from the committed offset, not from the beginning.
    assert (await consume(3)) == [b"m3", b"m4", b"m5"]


def test_postgres_answers(postgres: PostgresService, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert row is not None and row[0] >= 0


_CHILD = textwrap.dedent(
    """
    import sys, time
    from devservices.kafka import embedded_kafka, local_kafka
    from devservices.postgres import embedded_postgres
    with embedded_kafka() as t, local_kafka() as k, embedded_postgres() as p:
        print(t.pid, k.pid, p.pid, flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_embedded_services_do_not_outlive_their_owner(how: signal.Signals) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, env={**os.environ}
    )
    assert child.stdout is not None
    pids = [int(p) for p in child.stdout.readline().split()]
    assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
    child.send_signal(how)
    child.wait(20)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_explicit_environment_wins(
    kafka: KafkaService,
    postgres: PostgresService,
    monkeypatch: pytest.MonkeyPatch,
    topic: str,
    unique: str,
) -> None:
    from devservices import kafka_service, postgres_service

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("DATABASE_URL", postgres.url)
    with kafka_service() as k, postgres_service() as p:
        assert (k.source, p.source) == ("env", "env")
        assert k.pid is None and p.pid is None  # nothing of ours started
        await round_trip(k, topic, f"env-{unique}")
        with psycopg.connect(p.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
