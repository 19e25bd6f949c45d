"""Every record the worker publishes carries the headers ``schemas/asyncapi.yaml`` gives it.

Real records go through a real worker (broker, Postgres, Zoom emulator); the published records
are read back raw and their headers checked against the header schemas of the AsyncAPI document,
``$ref``s resolved by ``jsonschema``. The document promises that the worker sets the
``messageHeaders`` on everything it publishes, so every header a schema names must be there.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from devservices import KafkaService
from devservices._process import free_port
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from schemas import FailureReason, LinkedAction
from schemas.dead_letter import DLQ_HEADERS
from schemas.headers import message_headers
from tests.schemas.contract_files import SCHEMA_DIR
from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import PARTITIONS, event
from tests.worker.test_results import NOW, stored_link
from tests.worker.test_results import source as calendar_source
from worker.pipeline import results
from worker.pipeline.decision import Create, wanted_meeting
from worker.pipeline.failures import Failure

DOCUMENT: dict[str, Any] = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
BASE = "urn:talivo:zoom-worker:asyncapi"
REGISTRY: Registry[Any] = Registry().with_resource(BASE, DRAFT202012.create_resource(DOCUMENT))

# jsonschema checks date-time only with an optional package: check RFC 3339 here.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker()


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not RFC 3339")
    datetime.fromisoformat(value.upper())  # impossible dates such as 2025-02-30
    return True


FORMATS.checks("date-time", raises=ValueError)(_date_time)


CREATE = "POST /v2/users/{userId}/meetings"

# What a calendar producer may put on its records: kept on a dead letter, never on a result
# (the document names no header a result carries over from its source).
SOURCE_HEADERS = (
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("message-type", b"event.created"),
    ("schema-version", b"1"),
    ("content-type", b"application/json"),
)


@dataclass(frozen=True)
class HeaderContract:
    """One channel's message, as the AsyncAPI document describes it."""

    address: str
    message_name: str
    validator: Draft202012Validator
    named: frozenset[str]  # every header the schema names (properties and required)
    required: frozenset[str]


def _deref(node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Follow a local ``$ref`` (AsyncAPI Reference Object); return its pointer and target."""
    ref = node.get("$ref")
    if ref is None:
        return None, node
    target: Any = REGISTRY.resolver(BASE).lookup(f"{BASE}{ref}").contents
    return ref, target


@cache
def contract(address: str) -> HeaderContract:
    (channel,) = [c for c in DOCUMENT["channels"].values() if c["address"] == address]
    (message_node,) = channel["messages"].values()
    message_ref, message = _deref(message_node)
    assert message_ref is not None, "messages are components, referenced from channels"
    # Validate through a $ref into the document, so every $ref in the schema resolves there.
    validator = Draft202012Validator(
        {"$ref": f"{BASE}{message_ref}/headers"}, registry=REGISTRY, format_checker=FORMATS
    )
    _, schema = _deref(message["headers"])
    while "$ref" in schema:
        _, schema = _deref(schema)
    Draft202012Validator.check_schema(schema)
    required = frozenset(schema.get("required", ()))
    return HeaderContract(
        address=address,
        message_name=message["name"],
        validator=validator,
        named=frozenset(schema.get("properties", {})) | required,
        required=required,
    )


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def json(self) -> dict[str, Any]:
        assert self.value is not None
        body: dict[str, Any] = json.loads(self.value)
        return body

    def header_text(self) -> dict[str, str]:
        """Header values as UTF-8 text (all of ours are); a repeated name keeps its last value."""
        return {name: value.decode("utf-8") for name, value in self.headers}


@dataclass
class Raw:
    """Every record on the result and dead-letter topics, headers as sent (order, repeats)."""

    bootstrap: str
    results_topics: tuple[str, str]  # meeting.linked, meeting.failed
    dead_letter: str
    seen: list[Published] = field(default_factory=list)
    consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await self.consumer.start()
        topics = (*self.results_topics, self.dead_letter)
        parts = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_beginning(*parts)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def until(
        self, predicate: Callable[[list[Published]], bool], timeout: float = 60
    ) -> list[Published]:
        assert self.consumer is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.seen.extend(
                    Published(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        tuple((name, bytes(value)) for name, value in r.headers or ()),
                    )
                    for r in records
                )
            if predicate(self.seen):
                return self.seen
        raise AssertionError(f"condition on published records not met: {self.seen}")

    def results(self, topic: str, event_id: str) -> list[Published]:
        return [p for p in self.seen if p.topic == topic and p.key == event_id.encode()]

    async def wait_results(self, topic: str, event_id: str, count: int) -> list[Published]:
        await self.until(lambda _: len(self.results(topic, event_id)) >= count)
        return self.results(topic, event_id)

    async def wait_dead_letter(self, source: Sent) -> Published:
        def mine() -> list[Published]:
            return [
                p
                for p in self.seen
                if p.topic == self.dead_letter
                and dict(p.headers).get("x-dlq-source-topic") == source.topic.encode()
                and dict(p.headers).get("x-dlq-source-offset") == str(source.offset).encode()
                and dict(p.headers).get("x-dlq-source-partition") == str(source.partition).encode()
            ]

        await self.until(lambda _: len(mine()) >= 1)
        (parked,) = mine()
        return parked


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class World:
    pipeline: Pipeline
    raw: Raw
    producer: AIOKafkaProducer
    addresses: dict[str, str]  # our topic name -> the AsyncAPI channel address

    async def send(self, kind: str, body: dict[str, Any] | bytes, key: str) -> Sent:
        """Send one calendar record, with the headers a calendar producer may set."""
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        topic = getattr(self.pipeline.topics, kind)
        meta = await self.producer.send_and_wait(
            topic, value, key=key.encode(), headers=list(SOURCE_HEADERS)
        )
        return Sent(topic, meta.partition, meta.offset, key.encode(), value)


@pytest.fixture(scope="module")
async def world(kafka: KafkaService, database_url: str, zoom: ZoomEmulator) -> AsyncIterator[World]:
    prefix = f"h-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        p.port = free_port()
        # A horizon of seconds: a failure Zoom keeps up is final (and parked) within the test.
        worker = p.worker(
            HTTP_PORT=str(p.port), RETRY_DELAYS_SECONDS="0.5", RETRY_HORIZON_SECONDS="2"
        )
        worker.start()
        raw = Raw(kafka.bootstrap_servers, (p.topics.linked, p.topics.failed), p.topics.dlq)
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=False
        )
        await raw.start()
        await producer.start()
        addresses = {
            p.topics.linked: "meeting.linked",
            p.topics.failed: "meeting.failed",
            p.topics.dlq: "zoom-worker.dlq",  # the default address; the harness renames it
        }
        try:
            yield World(p, raw, producer, addresses)
        finally:
            zoom.faults = []
            await producer.stop()
            await raw.stop()
            assert worker.stop() == 0, worker.log()[-3000:]


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


def assert_valid(world: World, record: Published) -> HeaderContract:
    """The record's headers validate against its message's header schema, none missing."""
    rules = contract(world.addresses[record.topic])
    text = record.header_text()
    errors = [e.message for e in rules.validator.iter_errors(text)]
    assert errors == [], f"{rules.address} headers {text}: {errors}"
    assert rules.required <= text.keys()
    assert rules.named <= text.keys(), f"{rules.address} misses {rules.named - text.keys()}"
    return rules


def assert_result_headers(world: World, record: Published) -> None:
    """A result carries its message's headers, each once, and nothing of its source's."""
    rules = assert_valid(world, record)
    names = [name for name, _ in record.headers]
    assert sorted(names) == sorted(rules.named), names
    text = record.header_text()
    assert text["message-type"] == rules.message_name
    assert text["schema-version"] == str(record.json()["schema_version"])
    assert text["content-type"] == DOCUMENT["defaultContentType"]


def assert_dead_letter_headers(world: World, record: Published, source: Sent, reason: str) -> None:
    """The source record byte for byte, its headers first, then the x-dlq-* ones once each."""
    assert_valid(world, record)
    assert (record.key, record.value) == (source.key, source.value)
    assert record.headers[: len(SOURCE_HEADERS)] == SOURCE_HEADERS
    ours = record.headers[len(SOURCE_HEADERS) :]
    assert [name for name, _ in ours] == list(DLQ_HEADERS)
    text = dict((name, value.decode()) for name, value in ours)
    assert text["x-dlq-source-topic"] == source.topic
    assert text["x-dlq-source-partition"] == str(source.partition)
    assert text["x-dlq-source-offset"] == str(source.offset)
    assert text["x-dlq-reason"] == reason
    assert 0 < len(dict(ours)["x-dlq-error"]) <= 2000  # bytes, as the document says
    failed_at = datetime.fromisoformat(text["x-dlq-failed-at"])
    assert failed_at.utcoffset() == timedelta(0)  # "RFC 3339 in UTC"


async def test_linked_results_and_their_republished_copies_carry_the_message_headers(
    world: World,
) -> None:
    ev = new_event_id()
    linked = world.pipeline.topics.linked
    newer = event(ev, 2)
    await world.send("updated", newer, ev)
    (first,) = await world.raw.wait_results(linked, ev, 1)
    assert first.json()["action"] == "created"
    # A stale source (answered from the stored result, re-correlated), then an exact redelivery
    # (the stored bytes): both are published again with the same headers.
    older = event(ev, 1)
    await world.send("created", older, ev)
    await world.send("updated", newer, ev)
    _, stale, again = await world.raw.wait_results(linked, ev, 3)
    assert stale.json()["correlation_id"] == older["message_id"]
    assert again.value == first.value
    for record in (first, stale, again):
        assert_result_headers(world, record)
        assert record.headers == first.headers
    assert dict(first.headers)["message-type"] == b"meeting.linked"


async def test_failed_results_and_their_republished_copies_carry_the_message_headers(
    world: World,
) -> None:
    ev = new_event_id()
    failed = world.pipeline.topics.failed
    body = event(ev, 1, organizer="carla")  # never connected Zoom: a permanent failure
    await world.send("created", body, ev)
    (first,) = await world.raw.wait_results(failed, ev, 1)
    assert first.json()["reason"] == "zoom_not_connected"
    await world.send("created", body, ev)  # redelivered: the stored answer again
    older = event(ev, 0, organizer="carla")  # stale: the stored answer, re-correlated
    await world.send("created", older, ev)
    _, again, stale = await world.raw.wait_results(failed, ev, 3)
    assert again.value == first.value
    assert stale.json()["correlation_id"] == older["message_id"]
    for record in (first, again, stale):
        assert_result_headers(world, record)
        assert record.headers == first.headers
    assert dict(first.headers)["message-type"] == b"meeting.failed"


async def test_a_transient_failure_is_reported_and_parked_each_with_its_headers(
    world: World,
) -> None:
    world.pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    try:
        ev = new_event_id()
        source = await world.send("created", event(ev, 1), ev)
        notice, failed = await world.raw.wait_results(world.pipeline.topics.failed, ev, 2)
        parked = await world.raw.wait_dead_letter(source)
    finally:
        world.pipeline.zoom.faults = []
    assert "next_attempt_at" in notice.json() and "next_attempt_at" not in failed.json()
    assert (failed.json()["reason"], failed.json()["retryable"]) == ("zoom_unavailable", True)
    assert_result_headers(world, notice)
    assert_result_headers(world, failed)
    assert_dead_letter_headers(world, parked, source, "zoom_unavailable")


async def test_malformed_records_are_parked_with_the_dead_letter_headers(world: World) -> None:
    ev, unreadable_ev = new_event_id(), new_event_id()
    broken = event(ev, 1)
    broken["start"] = "next tuesday"
    readable = await world.send("created", broken, ev)
    unreadable = await world.send("updated", b"\xff not json", unreadable_ev)
    (failed,) = await world.raw.wait_results(world.pipeline.topics.failed, ev, 1)
    assert failed.json()["reason"] == "invalid_event"
    assert_result_headers(world, failed)
    for source in (readable, unreadable):
        parked = await world.raw.wait_dead_letter(source)
        assert_dead_letter_headers(world, parked, source, "invalid_event")
    assert world.raw.results(world.pipeline.topics.failed, unreadable_ev) == []


def test_the_header_schemas_resolve_from_the_document() -> None:
    """The contract the tests above use: what each published message's headers must hold."""
    linked, failed = contract("meeting.linked"), contract("meeting.failed")
    dead = contract("zoom-worker.dlq")
    assert linked.named == failed.named == {"message-type", "schema-version", "content-type"}
    assert (linked.message_name, failed.message_name) == ("meeting.linked", "meeting.failed")
    assert dead.required == set(DLQ_HEADERS)
    # The schemas do reject what they should.
    assert not linked.validator.is_valid({"content-type": "text/plain"})
    assert not linked.validator.is_valid({"schema-version": "v1"})
    bad_time = {name: "0" for name in DLQ_HEADERS} | {"x-dlq-failed-at": "yesterday"}
    assert not dead.validator.is_valid(bad_time)
    assert not dead.validator.is_valid({"x-dlq-reason": "invalid_event"})


def test_a_stored_result_is_answered_with_the_headers_it_was_first_published_with() -> None:
    """The pure side: ``answer_headers`` gives a republished answer its first headers."""
    src = calendar_source(3)
    first = results.linked(src, stored_link(3), LinkedAction.UPDATED, NOW)
    link = stored_link(3).evolve(
        last_message_id=src.message_id, last_result=first.to_bytes(), last_result_topic="linked"
    )
    assert results.result_headers(first) == tuple(message_headers("meeting.linked"))
    assert results.answer_headers(link.answer, "linked") == results.result_headers(first)
    failure = Failure(FailureReason.ZOOM_NOT_CONNECTED, retryable=False, attempts=1, detail="")
    failed = results.failed(
        calendar_source(1), Create(wanted_meeting(calendar_source(1)), False), failure, NOW
    )
    stored = link.evolve(last_result=failed.to_bytes(), last_result_topic="failed")
    assert results.answer_headers(stored.answer, "linked") == tuple(
        message_headers("meeting.failed")
    )
