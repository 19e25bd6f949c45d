"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables turn it on.

**On** when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``; ``none`` is off) or,
without it, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set (then ``otlp``); ``OTEL_SDK_DISABLED=true`` wins over both. OTLP goes over HTTP/protobuf
only (``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` may say nothing else). Everything else is the
SDK's own reading of the environment: endpoint, headers, timeout, compression and certificates
of the exporter, ``OTEL_TRACES_SAMPLER`` (default: follow the parent, else sample),
``OTEL_BSP_*``, ``OTEL_SPAN_*_LIMIT``, ``OTEL_PROPAGATORS`` (default: W3C trace context and
baggage), ``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_SERVICE_NAME`` defaults to ``zoom-worker``.

When on, a trace for one consumed record looks like::

    event.created process    CONSUMER, child of the record's ``traceparent`` (if any)
    ├── SELECT / INSERT ...  CLIENT, Postgres (psycopg's instrumentation)
    ├── POST                 CLIENT, Zoom's API or OAuth (httpx's instrumentation)
    └── meeting.linked send  PRODUCER; its context is the published record's ``traceparent``

and a scheduled retry starts a trace of its own (``event.created retry``) linked to the stored
record's ``traceparent``. A client span without a parent (the dependency probe's ``SELECT 1``,
``/readyz``, a new connection's ``SET TIME ZONE``) is not recorded. Our spans carry an
exception's class name, never its text (as the logs do).

**Off**, nothing is wrapped or instrumented and no header is added: ``Tracing.off()``'s wrappers
return what they are given and ``tracer`` is None.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.span import Span, TraceState
from opentelemetry.util.types import Attributes

from worker.engine.records import ConsumedRecord, RecordHandler
from worker.pipeline.pending import ScheduledRetry
from worker.pipeline.ports import Headers
from worker.pipeline.retries import RetryRun
from worker.runtime.config import ConfigError

if TYPE_CHECKING:
    import httpx

DEFAULT_SERVICE_NAME = "zoom-worker"
EXPORTERS = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"
TRACEPARENT = "traceparent"
_KEY_ATTRIBUTE_MAX = 256  # longer (hostile) keys are left out of the attributes

# Messaging semantic conventions (1.27+ names; span names "<destination> <operation>").
SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
GROUP = "messaging.consumer.group.name"
OFFSET = "messaging.kafka.offset"
KEY = "messaging.kafka.message.key"
BODY_SIZE = "messaging.message.body.size"
ERROR_TYPE = "error.type"


class Tracing:
    """The process's tracing: an SDK ``TracerProvider`` (on) or none (off)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider
        self.tracer: Tracer | None = provider.get_tracer(__name__) if provider else None

    @classmethod
    def off(cls) -> Tracing:
        return cls(None)

    @classmethod
    def from_environment(cls) -> Tracing:
        """As the ``OTEL_*`` variables say (module docstring); ``ConfigError`` naming the
        variable when they ask for an exporter or protocol this worker does not have."""
        names = exporter_names(os.environ)
        if not names:
            return cls.off()
        return cls(tracer_provider(*(BatchSpanProcessor(_exporter(name)) for name in names)))

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Postgres statements traced inside (psycopg's instrumentation is process-wide: enter
        before the pool opens); on the way out the spans still buffered are exported."""
        provider = self._provider
        if provider is None:
            yield
            return
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument(tracer_provider=provider)
        try:
            yield
        finally:
            PsycopgInstrumentor().uninstrument()
            await asyncio.to_thread(provider.shutdown)  # exports what is left: may block

    def instrument_http(self, client: httpx.AsyncClient) -> None:
        """A span for every request ``client`` sends (and its ``traceparent`` on the request)."""
        if self._provider is None:
            return
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self._provider)

    def records(self, handler: RecordHandler, *, group: str) -> RecordHandler:
        """``handler`` with a span around each record (``TracedHandler``); itself when off."""
        if self.tracer is None:
            return handler
        return TracedHandler(handler, self.tracer, group=group)

    def retries(self, run: RetryRun, *, group: str) -> RetryRun:
        """``run`` with a span around each scheduled retry (``TracedRetry``); itself when off."""
        if self.tracer is None:
            return run
        return TracedRetry(run, self.tracer, group=group)


def exporter_names(env: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters ``env`` asks for, none when tracing is off; ``ConfigError`` for one
    this worker does not have, or an OTLP protocol other than HTTP/protobuf."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    listed = env.get("OTEL_TRACES_EXPORTER", "")
    names = [n.strip().lower() for n in listed.split(",") if n.strip()]
    if not names and any(
        env.get(v) for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        names = ["otlp"]
    names = [n for n in dict.fromkeys(names) if n != "none"]
    problems = [
        f"config error: OTEL_TRACES_EXPORTER names {name!r}, which this worker does not have"
        f" ({', '.join(EXPORTERS)} or none) (example: OTEL_TRACES_EXPORTER=otlp)"
        for name in names
        if name not in EXPORTERS
    ]
    if "otlp" in names:
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = env.get(variable, "").strip()
            if protocol:
                if protocol != OTLP_PROTOCOL:
                    problems.append(
                        f"config error: {variable} is {protocol!r}; this worker exports OTLP"
                        f" over {OTLP_PROTOCOL} only (example: {variable}={OTLP_PROTOCOL})"
                    )
                break  # the traces-specific variable wins over the general one
    if problems:
        raise ConfigError(problems)
    return tuple(names)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout ... from OTEL_EXPORTER_OTLP_*


def tracer_provider(*processors: SpanProcessor) -> TracerProvider:
    """A provider as the environment describes it (resource, sampler, limits), exporting
    through ``processors``; lone client spans dropped (``NoLoneClientSpans``)."""
    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # its sampler from OTEL_TRACES_SAMPLER
    provider.sampler = NoLoneClientSpans(provider.sampler)  # before any tracer is made
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


class NoLoneClientSpans(Sampler):
    """Drops a client span (a Postgres statement, an HTTP call) that has no parent: the
    dependency probe would otherwise make a trace of one ``SELECT 1`` every few seconds.
    Every other decision is ``inner``'s."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        lone = not trace.get_current_span(parent_context).get_span_context().is_valid
        if kind is SpanKind.CLIENT and lone:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoLoneClientSpans{{{self._inner.get_description()}}}"


class _HeaderGetter(Getter[Headers]):
    """Kafka headers as a propagator reads them: names exact, values as text."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [value.decode("utf-8", "replace") for name, value in carrier if name == key]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _HeaderGetter()


def extract(headers: Headers) -> Context:
    """The trace context ``headers`` carry (W3C ``traceparent``/``tracestate`` by default);
    an empty context when they carry none or an invalid one."""
    return propagate.extract(headers, context=Context(), getter=_GETTER)


def with_trace_context(headers: Headers) -> Headers:
    """``headers`` and, after them, the current trace context (``traceparent``, ...); unchanged
    when they carry a ``traceparent`` already (a dead letter keeps its source's) or when no
    span is current."""
    if any(name == TRACEPARENT for name, _ in headers):
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    present = {name for name, _ in headers}
    added = tuple((name, value.encode()) for name, value in carrier.items() if name not in present)
    return headers + added


def record_attributes(record: ConsumedRecord, group: str) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        SYSTEM: "kafka",
        OPERATION_TYPE: "process",
        OPERATION_NAME: "process",
        DESTINATION: record.topic,
        PARTITION: str(record.partition),
        GROUP: group,
        OFFSET: record.offset,
        BODY_SIZE: len(record.value or b""),
    }
    key = key_text(record.key)
    if key is not None:
        attributes[KEY] = key
    return attributes


def send_attributes(topic: str, key: bytes | None, value: bytes | None) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        SYSTEM: "kafka",
        OPERATION_TYPE: "send",
        OPERATION_NAME: "send",
        DESTINATION: topic,
        BODY_SIZE: len(value or b""),
    }
    text = key_text(key)
    if text is not None:
        attributes[KEY] = text
    return attributes


def key_text(key: bytes | None) -> str | None:
    """A record key as an attribute: UTF-8 text of reasonable length, else left out."""
    if key is None or len(key) > _KEY_ATTRIBUTE_MAX:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def failed(span: Span, error: BaseException) -> None:
    """Mark ``span`` with what ended it: the class name only, never the text."""
    kind = type(error)
    qualified = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    span.set_attribute(ERROR_TYPE, qualified)
    if isinstance(error, Exception):
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


class TracedHandler:
    """A ``RecordHandler`` running ``inner`` inside a CONSUMER span for the record, a child of
    the record's trace context, current while ``inner`` runs (so Postgres, Zoom and what is
    published are its children)."""

    def __init__(self, inner: RecordHandler, tracer: Tracer, *, group: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._group = group

    async def __call__(self, record: ConsumedRecord) -> None:
        with self._tracer.start_as_current_span(
            f"{record.topic} process",
            context=extract(record.headers),
            kind=SpanKind.CONSUMER,
            attributes=record_attributes(record, self._group),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self._inner(record)
            except BaseException as error:  # cancellation too: the record is not committed
                failed(span, error)
                raise


class TracedRetry:
    """A ``RetryRun`` running ``inner`` inside a CONSUMER span of a trace of its own (a retry
    runs long after its record), linked to the stored record's trace context."""

    def __init__(self, inner: RetryRun, tracer: Tracer, *, group: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._group = group

    async def __call__(self, scheduled: ScheduledRetry) -> bool:
        record, pending = scheduled.record, scheduled.pending
        source = trace.get_current_span(extract(record.headers)).get_span_context()
        attributes = record_attributes(record, self._group) | {
            "zoom_worker.retry.attempt": pending.attempt,
            "zoom_worker.retry.reason": pending.reason,
        }
        with self._tracer.start_as_current_span(
            f"{record.topic} retry",
            context=Context(),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=[Link(source)] if source.is_valid else None,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                parked = await self._inner(scheduled)
            except BaseException as error:
                failed(span, error)
                raise
            span.set_attribute("zoom_worker.retry.parked", parked)
            return parked
