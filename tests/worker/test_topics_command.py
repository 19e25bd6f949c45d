"""``zoom-worker topics ensure`` against the broker: creates what is missing, checks
co-partitioning, changes nothing that exists, and is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from devservices import KafkaService
from devservices.kafka import create_topics

from tests.worker.harness import Topics


@pytest.fixture
async def admin(kafka: KafkaService) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await client.start()
    yield client
    await client.close()


def ensure(kafka: KafkaService, topics: Topics, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOG_FORMAT": "console",
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", "topics", "ensure", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def counts(admin: AIOKafkaAdminClient, topics: Topics) -> dict[str, int]:
    """Partition counts of the six, from all topics' metadata (naming a missing topic in a
    metadata request could auto-create it)."""
    wanted = set(topics.all())
    return {
        t["topic"]: len(t["partitions"])
        for t in await admin.describe_topics()
        if t["topic"] in wanted and t["partitions"]
    }


async def test_creates_the_six_once_and_then_changes_nothing(
    kafka: KafkaService, admin: AIOKafkaAdminClient, unique: str
) -> None:
    topics = Topics(f"te-{unique}")
    dry = ensure(kafka, topics, "--dry-run", "--partitions", "4")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would create, 4 partitions, replication factor 1") == 6
    assert await counts(admin, topics) == {}, "a dry run creates nothing"

    first = ensure(kafka, topics, "--partitions", "4", "--replication-factor", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": created, 4 partitions, replication factor 1") == 6
    assert "event topics co-partitioned: 4 partitions each" in first.stdout
    assert await counts(admin, topics) == dict.fromkeys(topics.all(), 4)

    again = ensure(kafka, topics)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("exists, 4 partitions") == 6, again.stdout
    assert ": created" not in again.stdout
    assert await counts(admin, topics) == dict.fromkeys(topics.all(), 4)


async def test_missing_topics_take_the_count_of_the_event_topics_that_exist(
    kafka: KafkaService, admin: AIOKafkaAdminClient, unique: str
) -> None:
    topics = Topics(f"tm-{unique}")
    await create_topics(kafka.bootstrap_servers, [topics.created], partitions=5)
    result = ensure(kafka, topics)  # default partitions and replication factor
    assert result.returncode == 0, result.stderr
    assert f"{topics.created}: exists, 5 partitions" in result.stdout
    assert await counts(admin, topics) == dict.fromkeys(topics.all(), 5)


@pytest.mark.parametrize(
    ("existing", "args", "message"),
    [
        pytest.param(
            {"created": 3, "updated": 5},
            (),
            "event topics are not co-partitioned ({created} has 3, {updated} has 5)",
            id="event-topics-differ",
        ),
        pytest.param(
            {"deleted": 3},
            ("--partitions", "6"),
            "--partitions 6, but the event topics that exist have 3",
            id="partitions-option-differs",
        ),
    ],
)
async def test_a_partitioning_problem_exits_1_and_creates_nothing(
    kafka: KafkaService,
    admin: AIOKafkaAdminClient,
    unique: str,
    existing: dict[str, int],
    args: tuple[str, ...],
    message: str,
) -> None:
    topics = Topics(f"tp-{unique}")
    for kind, partitions in existing.items():
        await create_topics(kafka.bootstrap_servers, [getattr(topics, kind)], partitions)
    result = ensure(kafka, topics, *args)
    assert result.returncode == 1
    names = {kind: getattr(topics, kind) for kind in ("created", "updated", "deleted")}
    assert message.format(**names) in result.stderr
    assert result.stdout == ""
    expected = {getattr(topics, kind): count for kind, count in existing.items()}
    assert await counts(admin, topics) == expected, "nothing created"


async def test_a_replication_factor_the_cluster_cannot_hold_is_reported(
    kafka: KafkaService, admin: AIOKafkaAdminClient, unique: str
) -> None:
    if not kafka.is_apache_kafka:
        pytest.skip("Tansu does not check replication factors")
    topics = Topics(f"tr-{unique}")
    result = ensure(kafka, topics, "--replication-factor", "3")
    assert result.returncode == 1
    assert f"could not create {topics.created}: InvalidReplicationFactorError" in result.stderr
    assert await counts(admin, topics) == {}
