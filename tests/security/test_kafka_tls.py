"""Kafka over TLS (and SASL): the settings reach aiokafka's producer and consumer as given.

The producer and consumer are built by the worker's own factories (``worker/runtime/kafka.py``)
and looked into: protocol, SASL mechanism and credentials, and the TLS context, which is then
used for real handshakes against loopback servers: it trusts the configured CA (and not
another), verifies host names, and presents the configured client certificate. Settings that
do not fit together are configuration errors, never silently plaintext.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.security.tls_server import HOSTS
from worker.runtime import kafka
from worker.runtime.config import ConfigError, Settings, load_settings

SECRET = "sasl-password-that-must-not-leak"
CLIENT_NAME = "zoom-worker.clients.test"


@dataclass
class Files:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(ca: trustme.CA, tmp_path: Path) -> Files:
    client = ca.issue_cert(CLIENT_NAME)
    found = Files(tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key")
    ca.cert_pem.write_to_path(str(found.ca))
    client.cert_chain_pems[0].write_to_path(str(found.cert))
    client.private_key_pem.write_to_path(str(found.key))
    return found


def env_of(files: Files, **more: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "zoom-worker",
        "KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_SSL_CAFILE": str(files.ca),
        "KAFKA_SSL_CERTFILE": str(files.cert),
        "KAFKA_SSL_KEYFILE": str(files.key),
        **more,
    }


@dataclass
class Broker:
    """A TLS endpoint on loopback standing in for a broker that requires client certificates;
    it records the client certificate each connection presented."""

    context: ssl.SSLContext
    peers: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peercert"))
        writer.close()


def broker_context(ca: trustme.CA, clients_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*HOSTS).configure_cert(context)
    clients_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
async def broker(ca: trustme.CA) -> AsyncIterator[Broker]:
    found = Broker(broker_context(ca, ca))
    server = await asyncio.start_server(found._accept, "127.0.0.1", 0, ssl=found.context)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


async def handshake(context: ssl.SSLContext, port: int, host: str = "localhost") -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=host
    )
    await reader.read()  # the server closes after the handshake
    writer.close()


async def test_tls_and_sasl_settings_reach_the_producer_and_the_consumer(
    files: Files, broker: Broker
) -> None:
    settings = load_settings(env_of(files), ["kafka"])
    producer, consumer = kafka.producer(settings), kafka.consumer(settings)
    try:
        for client in (producer.client, consumer._client):
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "SCRAM-SHA-512"
            assert client._sasl_plain_username == "zoom-worker"
            assert client._sasl_plain_password == SECRET
            context: ssl.SSLContext = client._ssl_context
            assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
            # The configured CA is trusted and the client certificate presented.
            before = len(broker.peers)
            await handshake(context, broker.port)
            assert len(broker.peers) == before + 1
            names = [value for kind, value in broker.peers[-1]["subjectAltName"] if kind == "DNS"]
            assert names == [CLIENT_NAME]
            # Host names are checked: the certificate is not for this one.
            with pytest.raises(ssl.SSLCertVerificationError):
                await handshake(context, broker.port, host="kafka.elsewhere.test")
    finally:
        await producer.stop()
        await consumer.stop()


async def test_a_broker_signed_by_another_ca_is_refused(files: Files, ca: trustme.CA) -> None:
    other = trustme.CA()
    impostor = Broker(broker_context(other, ca))
    server = await asyncio.start_server(impostor._accept, "127.0.0.1", 0, ssl=impostor.context)
    settings = load_settings(env_of(files), ["kafka"])
    producer = kafka.producer(settings)
    try:
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(ssl.SSLCertVerificationError):
                await handshake(producer.client._ssl_context, port)
    finally:
        await producer.stop()
    assert impostor.peers == []


async def test_plaintext_by_default_with_no_tls_context() -> None:
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092"}, ["kafka"])
    producer = kafka.producer(settings)
    try:
        assert producer.client._security_protocol == "PLAINTEXT"
        assert producer.client._ssl_context is None
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    ("change", "variable", "complaint"),
    [
        ({"KAFKA_SASL_MECHANISM": ""}, "KAFKA_SASL_MECHANISM", "is required when"),
        ({"KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD", "is required when"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": SECRET},
         "KAFKA_SSL_CAFILE", "uses no TLS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SASL_MECHANISM", "uses no SASL"),
        ({"KAFKA_SSL_CERTFILE": ""}, "KAFKA_SSL_KEYFILE", "without KAFKA_SSL_CERTFILE"),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE", "names no file"),
    ],
    ids=["sasl-without-mechanism", "sasl-without-password", "tls-files-without-tls",
         "sasl-setting-without-sasl", "key-without-cert", "missing-ca-file"],
)  # fmt: skip
def test_kafka_security_settings_that_do_not_fit_are_config_errors(
    files: Files, change: dict[str, str], variable: str, complaint: str
) -> None:
    env = {k: v for k, v in {**env_of(files), **change}.items() if v}
    with pytest.raises(ConfigError) as caught:
        load_settings(env, ["kafka"])
    named = [line for line in caught.value.problems if line.split()[2] == variable]
    assert len(named) == 1 and complaint in named[0], caught.value.problems
    assert SECRET not in "\n".join(caught.value.problems)


async def test_a_client_certificate_may_carry_its_key(files: Files, broker: Broker) -> None:
    files.cert.write_text(files.cert.read_text() + files.key.read_text())
    env = {k: v for k, v in env_of(files).items() if k != "KAFKA_SSL_KEYFILE"}
    settings: Settings = load_settings(env, ["kafka"])
    producer = kafka.producer(settings)
    try:
        await handshake(producer.client._ssl_context, broker.port)
    finally:
        await producer.stop()
    assert settings.kafka_ssl_keyfile is None and len(broker.peers) == 1
