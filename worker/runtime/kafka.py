"""Kafka clients built from settings: security pass-through, one place for client options.

``KAFKA_SECURITY_PROTOCOL`` ``SSL`` or ``SASL_SSL`` encrypts every connection to the brokers
with a context from aiokafka's ``create_ssl_context``: brokers' certificates and host names
verified against ``KAFKA_SSL_CAFILE`` (the system's CAs when unset), and the client certificate
``KAFKA_SSL_CERTFILE`` (key in ``KAFKA_SSL_KEYFILE`` or in the same file) presented to brokers
that ask. ``SASL_*`` adds ``KAFKA_SASL_MECHANISM`` with user name and password; the password
is read here and nowhere else, never logged. The settings check they fit together.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.helpers import create_ssl_context

from worker.runtime.config import Settings


def _common(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "client_id": "zoom-worker",
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **_common(settings),
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
    )


def consumer(settings: Settings, *, group_id: str | None = None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **_common(settings),
        group_id=group_id or settings.kafka_group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(RangePartitionAssignor,),
        max_poll_records=500,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 10),
        # A revoke may wait out the shutdown grace before the group goes on.
        rebalance_timeout_ms=int((settings.shutdown_grace_seconds + 10) * 1000),
    )
