"""Tracing (worker/runtime/tracing.py): off unless the OTEL_* variables turn it on; when on, a
record's span continues its ``traceparent``, Postgres and Zoom calls are its children, and what
the worker publishes carries the trace on.

Spans are collected in process with the SDK's ``InMemorySpanExporter``: first the parts alone
(the handler and retry wrappers, the publisher against the real broker), then the whole worker
(``worker.runtime.app.run``) against the real broker, Postgres and the Zoom emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from devservices import KafkaService
from devservices.zoom_emulator import ZoomEmulator
from devservices.zoom_emulator.faults import Fault
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event
from worker.engine.records import ConsumedRecord
from worker.pipeline.pending import PendingRetry, ScheduledRetry
from worker.runtime import app
from worker.runtime.config import ConfigError, load_settings
from worker.runtime.publisher import KafkaPublisher
from worker.runtime.tracing import (
    Tracing,
    exporter_names,
    tracer_provider,
    with_trace_context,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()
CREATE = "POST /v2/users/{userId}/meetings"


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without any OTEL_* variable."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)


@dataclass
class Collected:
    tracing: Tracing
    exporter: InMemorySpanExporter

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def in_trace(self, trace_id: int) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.context is not None and s.context.trace_id == trace_id]

    async def ended(self, name: str, trace_id: int, timeout: float = 10) -> list[ReadableSpan]:
        """The trace, once its span ``name`` has ended (a result is out before its record's
        span ends)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not any(s.name == name for s in self.in_trace(trace_id)):
            assert asyncio.get_running_loop().time() < deadline, f"no span {name}"
            await asyncio.sleep(0.05)
        return self.in_trace(trace_id)


def collected() -> Collected:
    exporter = InMemorySpanExporter()
    return Collected(Tracing(tracer_provider(SimpleSpanProcessor(exporter))), exporter)


def record(
    headers: Sequence[tuple[str, bytes]] = (), topic: str = "event.created"
) -> ConsumedRecord:
    return ConsumedRecord(
        topic=topic,
        partition=2,
        offset=41,
        key=b"ev-1",
        value=b'{"event_id": "ev-1"}',
        headers=tuple(headers),
        timestamp_ms=0,
    )


def traceparent_of(headers: Sequence[tuple[str, bytes]]) -> tuple[int, int]:
    """(trace id, parent span id) of the one ``traceparent`` in ``headers``."""
    (value,) = [v for n, v in headers if n == "traceparent"]
    version, trace_id, span_id, flags = value.decode().split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (0x02: a random trace id)
    return int(trace_id, 16), int(span_id, 16)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


# -- configuration: the OTEL_* variables ---------------------------------------------------------


def test_off_without_otel_variables_nothing_is_wrapped() -> None:
    tracing = Tracing.from_environment()

    async def handler(record: ConsumedRecord) -> None: ...

    async def run_retry(scheduled: ScheduledRetry) -> bool:
        return False

    assert not tracing.enabled and tracing.tracer is None
    assert tracing.records(handler, group="g") is handler
    assert tracing.retries(run_retry, group="g") is run_retry


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, ()),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ("console", "otlp")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, ()),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp"},
            ("otlp",),
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",  # for other signals: not ours
            },
            ("otlp",),
        ),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ("console",)),
    ],
    ids=[
        "nothing-set",
        "exporter-otlp",
        "endpoint-alone",
        "traces-endpoint-alone",
        "two-exporters",
        "exporter-none-wins",
        "sdk-disabled-wins",
        "sdk-disabled-false",
        "protocol-http",
        "traces-protocol-wins",
        "protocol-unused-by-console",
    ],
)
def test_the_otel_variables_turn_tracing_on(
    env: dict[str, str], exporters: tuple[str, ...]
) -> None:
    assert exporter_names(env) == exporters


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "_PROTOCOL"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "TRACES_PROTOCOL",
        ),
    ],
    ids=["unknown-exporter", "grpc", "http-json"],
)
def test_an_exporter_the_worker_lacks_is_a_config_error(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        exporter_names(env)
    (line,) = raised.value.problems
    assert line.startswith("config error: OTEL_") and named in line and "example:" in line


def test_the_worker_exits_2_on_a_bad_otel_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert app.main(load_settings({})) == 2  # before anything starts
    assert "config error: OTEL_TRACES_EXPORTER names 'zipkin'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "service"),
    [
        ({}, "zoom-worker"),
        ({"OTEL_SERVICE_NAME": "zoom-worker-eu"}, "zoom-worker-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=zw,deployment.environment=prod"}, "zw"),
    ],
    ids=["default", "service-name", "resource-attributes"],
)
def test_the_service_name_defaults_to_zoom_worker(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], service: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracer_provider().resource.attributes["service.name"] == service


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    """A stand-in OTLP/HTTP collector on a free loopback port; its base URL."""
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_spans_reach_the_otlp_endpoint_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, collector: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
    tracing = Tracing.from_environment()
    assert tracing.enabled

    async def handler(record: ConsumedRecord) -> None: ...

    async with tracing.running():  # its end exports what is buffered
        await tracing.records(handler, group="g")(record([("traceparent", TRACEPARENT)]))
    ((path, content_type, body),) = _Collector.received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    for expected in (b"zoom-worker", b"event.created process", bytes.fromhex(TRACE_ID)):
        assert expected in body


# -- the wrappers alone --------------------------------------------------------------------------


async def test_a_record_span_continues_the_records_traceparent() -> None:
    spans = collected()
    seen: list[tuple[tuple[str, bytes], ...]] = []

    async def handler(record: ConsumedRecord) -> None:
        seen.append(with_trace_context((("message-type", b"meeting.linked"),)))

    traced = spans.tracing.records(handler, group="zoom-worker")
    await traced(record([("traceparent", TRACEPARENT), ("tracestate", b"vendor=abc")]))

    (span,) = spans.spans()
    assert (span.name, span.kind) == ("event.created process", SpanKind.CONSUMER)
    assert span.parent is not None and span.parent.is_remote
    assert (span.parent.trace_id, span.parent.span_id) == (int(TRACE_ID, 16), int(PARENT_ID, 16))
    assert span.context is not None and span.context.trace_state.get("vendor") == "abc"
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "event.created",
        "messaging.destination.partition.id": "2",
        "messaging.consumer.group.name": "zoom-worker",
        "messaging.kafka.offset": 41,
        "messaging.kafka.message.key": "ev-1",
        "messaging.message.body.size": 20,
    }
    # While it runs, it is the context what the handler publishes carries on.
    ((headers),) = seen
    assert headers[0] == ("message-type", b"meeting.linked")
    assert traceparent_of(headers) == (int(TRACE_ID, 16), span_id(span))
    assert ("tracestate", b"vendor=abc") in headers


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("traceparent", b"not a traceparent"),),
        (("traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),),
        (("traceparent", b"\xff\xfe"),),
        (("Traceparent", TRACEPARENT),),  # Kafka header names are exact
    ],
    ids=["none", "garbage", "zero-trace-id", "not-utf8", "other-case"],
)
async def test_a_record_without_a_valid_traceparent_starts_a_trace(
    headers: tuple[tuple[str, bytes], ...],
) -> None:
    spans = collected()

    async def handler(record: ConsumedRecord) -> None: ...

    await spans.tracing.records(handler, group="g")(record(headers))
    (span,) = spans.spans()
    assert span.parent is None and trace_id(span) != int(TRACE_ID, 16)


async def test_a_handler_that_raises_marks_its_span_with_the_class_only() -> None:
    spans = collected()

    class Boom(RuntimeError):
        pass

    async def handler(record: ConsumedRecord) -> None:
        raise Boom("secret-token-in-the-text")

    with pytest.raises(Boom):
        await spans.tracing.records(handler, group="g")(record())
    (span,) = spans.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Boom"
    assert str((span.attributes or {})["error.type"]).endswith(".Boom")
    assert span.events == ()  # no exception event: it would carry the text


async def test_a_cancelled_record_ends_its_span() -> None:
    spans = collected()
    started = asyncio.Event()

    async def handler(record: ConsumedRecord) -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(spans.tracing.records(handler, group="g")(record()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (span,) = spans.spans()
    assert (span.attributes or {})["error.type"] == "asyncio.exceptions.CancelledError"
    assert span.status.status_code is StatusCode.UNSET  # cancelling is no error


def scheduled(headers: Sequence[tuple[str, bytes]]) -> ScheduledRetry:
    now = datetime.now(UTC)
    pending = PendingRetry(
        event_id="ev-1",
        message_id="m-1",
        revision=1,
        attempt=2,
        reason="zoom_unavailable",
        first_failed_at=now,
        due_at=now,
        notice_topic="meeting.failed",
        notice=b"{}",
    )
    return ScheduledRetry(pending, record(headers))


async def test_a_scheduled_retry_is_a_trace_of_its_own_linked_to_its_record() -> None:
    spans = collected()
    published: list[tuple[tuple[str, bytes], ...]] = []

    async def run_retry(scheduled: ScheduledRetry) -> bool:
        published.append(with_trace_context(()))
        return False

    with spans.tracing.tracer.start_as_current_span("runner tick"):  # type: ignore[union-attr]
        parked = await spans.tracing.retries(run_retry, group="g")(
            scheduled([("traceparent", TRACEPARENT)])
        )
    assert parked is False
    (span,) = spans.named("event.created retry")
    assert span.kind is SpanKind.CONSUMER and span.parent is None  # not the runner's child
    assert trace_id(span) != int(TRACE_ID, 16)
    (link,) = span.links
    assert (link.context.trace_id, link.context.span_id) == (int(TRACE_ID, 16), int(PARENT_ID, 16))
    attributes = span.attributes or {}
    assert attributes["zoom_worker.retry.attempt"] == 2
    assert attributes["zoom_worker.retry.reason"] == "zoom_unavailable"
    assert attributes["zoom_worker.retry.parked"] is False
    assert traceparent_of(published[0]) == (trace_id(span), span_id(span))


async def test_a_retry_of_a_record_without_traceparent_has_no_link() -> None:
    spans = collected()

    async def run_retry(scheduled: ScheduledRetry) -> bool:
        return True

    assert await spans.tracing.retries(run_retry, group="g")(scheduled(())) is True
    (span,) = spans.spans()
    assert span.links == () and (span.attributes or {})["zoom_worker.retry.parked"] is True


def test_trace_context_is_added_only_when_a_span_is_current_and_none_is_there() -> None:
    spans = collected()
    theirs = (("traceparent", TRACEPARENT), ("x-dlq-reason", b"invalid_event"))
    ours = (("message-type", b"meeting.failed"),)
    assert with_trace_context(ours) == ours  # no span current
    tracer = spans.tracing.tracer
    assert tracer is not None
    with tracer.start_as_current_span("s"):
        assert with_trace_context(theirs) == theirs  # a dead letter keeps its source's
        assert with_trace_context(ours)[:1] == ours
        assert [n for n, _ in with_trace_context(ours)] == ["message-type", "traceparent"]


def test_lone_client_spans_are_not_recorded() -> None:
    spans = collected()
    tracer = spans.tracing.tracer
    assert tracer is not None
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):  # the probe's
        pass
    with (
        tracer.start_as_current_span("t process", kind=SpanKind.CONSUMER),
        tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT),
    ):
        pass
    assert sorted(s.name for s in spans.spans()) == ["SELECT", "t process"]
    (select,) = spans.named("SELECT")
    assert select.parent is not None


# -- the publisher against the real broker -------------------------------------------------------


async def read_back(kafka: KafkaService, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        got: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(records)
        assert len(got) == count, got
        return sorted(got, key=lambda r: r.key)
    finally:
        await consumer.stop()


@pytest.fixture
async def producer(kafka: KafkaService) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    yield producer
    await producer.stop()


async def test_the_publisher_without_tracing_sends_the_headers_exactly(
    kafka: KafkaService, topic: str, producer: AIOKafkaProducer
) -> None:
    spans = collected()
    headers = (
        ("message-type", b"meeting.linked"),
        ("schema-version", b"1"),
        ("a", b"1"),
        ("a", b"2"),
    )
    publisher = KafkaPublisher(producer)
    tracer = spans.tracing.tracer
    assert tracer is not None
    with tracer.start_as_current_span("a span is current, but the publisher has no tracer"):
        await publisher.publish(topic, b"k1", b"v", headers)
    (got,) = await read_back(kafka, topic, 1)
    assert tuple((n, bytes(v)) for n, v in got.headers) == headers


async def test_the_publisher_carries_the_trace_on_in_a_send_span(
    kafka: KafkaService, topic: str, producer: AIOKafkaProducer
) -> None:
    spans = collected()
    tracer = spans.tracing.tracer
    assert tracer is not None
    publisher = KafkaPublisher(producer, tracer=tracer)
    result = (("message-type", b"meeting.linked"),)
    dead_letter = (("traceparent", TRACEPARENT), ("x-dlq-reason", b"invalid_event"))
    with tracer.start_as_current_span("event.created process") as parent:
        await publisher.publish(topic, b"k1", b"{}", result)
        await publisher.publish(topic, b"k2", b"{}", dead_letter)
    first, second = await read_back(kafka, topic, 2)

    sends = spans.named(f"{topic} send")
    assert [s.kind for s in sends] == [SpanKind.PRODUCER] * 2
    assert all(
        s.parent is not None and s.parent.span_id == parent.get_span_context().span_id
        for s in sends
    )
    headers = tuple((n, bytes(v)) for n, v in first.headers)
    assert headers[:1] == result
    assert traceparent_of(headers) == (parent.get_span_context().trace_id, span_id(sends[0]))
    attributes = sends[0].attributes or {}
    assert attributes["messaging.destination.partition.id"] == str(first.partition)
    assert attributes["messaging.kafka.offset"] == first.offset
    assert attributes["messaging.operation.type"] == "send"
    # A dead letter keeps its source's traceparent and nothing is added.
    assert tuple((n, bytes(v)) for n, v in second.headers) == dead_letter


# -- the whole worker, in process ----------------------------------------------------------------


@dataclass
class TracedWorker:
    pipeline: Pipeline
    spans: Collected
    bootstrap: str

    async def send_traced(self, event_id: str, traceparent: bytes) -> None:
        """An ``event.created`` for ``event_id`` with a calendar's ``traceparent``."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait(
                self.pipeline.topics.created,
                json.dumps(event(event_id, 1)).encode(),
                key=event_id.encode(),
                headers=[("traceparent", traceparent)],
            )
        finally:
            await producer.stop()


@pytest.fixture(scope="module")
async def traced_worker(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[TracedWorker]:
    """``app.run`` with an in-memory exporter, against the real broker, Postgres and emulator."""
    prefix = f"tr-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        await p.connect("ana")
        env = p.env | {"RETRY_DELAYS_SECONDS": "0.5", "RETRY_POLL_SECONDS": "0.2"}
        spans = collected()
        stop = asyncio.Event()
        running = asyncio.create_task(app.run(load_settings(env), stop, tracing=spans.tracing))
        try:
            yield TracedWorker(p, spans, kafka.bootstrap_servers)
        finally:
            zoom.faults = []
            stop.set()
            assert await asyncio.wait_for(running, 60) == 0
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):  # app.run took them over
                loop.remove_signal_handler(sig)


def result_headers(p: Pipeline, event_id: str, topic: str) -> list[dict[str, bytes]]:
    return [
        headers
        for t, value, headers in p.results.seen
        if t == topic and value is not None and value.get("event_id") == event_id
    ]


HTTP_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def url_of(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("url.full", attributes.get("http.url", "")))


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_traced_record_is_one_trace_through_postgres_zoom_and_its_result(
    traced_worker: TracedWorker,
) -> None:
    p, spans = traced_worker.pipeline, traced_worker.spans
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    await traced_worker.send_traced(ev, TRACEPARENT)
    (linked,) = await p.results.wait_for(ev, 1)
    assert linked["action"] == "created"

    trace = await spans.ended(f"{p.topics.created} process", int(TRACE_ID, 16))
    (process,) = [s for s in trace if s.name == f"{p.topics.created} process"]
    assert process.parent is not None and process.parent.span_id == int(PARENT_ID, 16)
    by_id = {span_id(s): s for s in trace}
    below = [s for s in trace if s is not process]
    assert below and all(process.name in ancestors(s, by_id) for s in below)
    # Zoom: the create call (and whatever else the client sent), all children of the process span
    zoom_calls = [s for s in below if s.kind is SpanKind.CLIENT and s.name in HTTP_METHODS]
    assert any(s.name == "POST" and "/meetings" in url_of(s) for s in zoom_calls), [
        (s.name, s.attributes) for s in zoom_calls
    ]
    # Postgres: the worker's statements
    statements = [s for s in below if (s.attributes or {}).get("db.system") == "postgresql"]
    assert statements, [s.name for s in below]
    # The result carries the trace on, from the span that sent it.
    (headers,) = result_headers(p, ev, p.topics.linked)
    trace_id_sent, sender = traceparent_of(list(headers.items()))
    assert trace_id_sent == int(TRACE_ID, 16)
    assert by_id[sender].name == f"{p.topics.linked} send"
    assert by_id[sender].kind is SpanKind.PRODUCER


async def test_a_record_without_traceparent_gets_a_trace_of_its_own(
    traced_worker: TracedWorker,
) -> None:
    p, spans = traced_worker.pipeline, traced_worker.spans
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    await p.sender.send("created", event(ev, 1, organizer="carla"))  # never connected Zoom
    (failed,) = await p.results.wait_for(ev, 1)
    assert failed["reason"] == "zoom_not_connected"
    (headers,) = result_headers(p, ev, p.topics.failed)
    trace_id_sent, sender = traceparent_of(list(headers.items()))
    trace = await spans.ended(f"{p.topics.created} process", trace_id_sent)
    (process,) = [s for s in trace if s.name == f"{p.topics.created} process"]
    assert process.parent is None
    by_id = {span_id(s): s for s in trace}
    assert ancestors(by_id[sender], by_id) == [process.name]
    assert (process.attributes or {})["messaging.kafka.message.key"] == ev


async def test_a_scheduled_retry_is_traced_and_linked_to_its_record(
    traced_worker: TracedWorker,
) -> None:
    p, spans = traced_worker.pipeline, traced_worker.spans
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    source_trace = uuid.uuid4().hex
    traceparent = f"00-{source_trace}-{PARENT_ID}-01".encode()
    p.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    try:
        await traced_worker.send_traced(ev, traceparent)
        (notice,) = await p.results.wait_for(ev, 1)
        assert notice["reason"] == "zoom_unavailable" and "next_attempt_at" in notice
    finally:
        p.zoom.faults = []
    await p.results.until(lambda: result_headers(p, ev, p.topics.linked), timeout=60)

    # The notice went out from the record's own trace ...
    notice_headers = result_headers(p, ev, p.topics.failed)[0]
    assert traceparent_of(list(notice_headers.items()))[0] == int(source_trace, 16)
    # ... the meeting from the retry's, a trace of its own linked to the record's.
    (linked_headers,) = result_headers(p, ev, p.topics.linked)
    retry_trace, sender = traceparent_of(list(linked_headers.items()))
    trace = await spans.ended(f"{p.topics.created} retry", retry_trace)
    (retry,) = [s for s in trace if s.name == f"{p.topics.created} retry"]
    assert retry.parent is None and retry_trace != int(source_trace, 16)
    (link,) = retry.links
    assert (link.context.trace_id, link.context.span_id) == (
        int(source_trace, 16),
        int(PARENT_ID, 16),
    )
    assert (retry.attributes or {})["zoom_worker.retry.reason"] == "zoom_unavailable"
    by_id = {span_id(s): s for s in trace}
    assert retry.name in ancestors(by_id[sender], by_id)
    assert any(s.name == "POST" and "/meetings" in url_of(s) for s in trace)
