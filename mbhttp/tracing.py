"""OpenTelemetry set-up: spans always exist (so trace ids flow across tiers), with child spans for
every Postgres statement, Redis command and outbound aiohttp call (OpenTelemetry's maintained
instrumentations), and are exported only when configured:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): OTLP over HTTP
  (protobuf) to a collector; the exporter reads the rest of the standard ``OTEL_*`` variables
  (headers, timeout, compression) itself;
- ``MEMORYBANK_OTEL=console``: printed, for a look by hand.

Trace context crosses the tiers in ``traceparent`` (mbhttp/context.py extracts it, the clients
inject it), so one write is one trace: edge → hub → central → its statements and COMMIT.

With no exporter, a request gets a non-recording span: the same trace id (the caller's, else a
new one) and a fresh span id, put in the context so logs, ``traceresponse`` and outbound
``traceparent`` carry them, without the SDK's span objects, which nobody would read (measured:
about 60 µs per request at a hub, more than a whole bare Litestar request)."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

_configured = False
_recording = False
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def exporters(environ: Mapping[str, str] = os.environ) -> list[SpanProcessor]:
    """The span processors the environment asks for (none: spans are made, not exported)."""
    out: list[SpanProcessor] = []
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        out.append(BatchSpanProcessor(OTLPSpanExporter()))
    if environ.get("MEMORYBANK_OTEL") == "console":
        out.append(BatchSpanProcessor(ConsoleSpanExporter()))
    return out


def instrument_clients() -> None:
    """Spans for the drivers' calls. Each instrumentor patches its library once per process;
    psycopg's wraps connections made after this call, so it runs before any pool opens."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (PsycopgInstrumentor(), RedisInstrumentor(), AioHttpClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            # Statement text is kept (parameters never are); psycopg's comment injection is off
            # so the SQL Postgres sees (and pg_stat_statements groups) stays ours.
            instrumentor.instrument()


def setup_tracing(service_name: str, environ: Mapping[str, str] = os.environ) -> None:
    global _configured, _recording
    if _configured:
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    processors = exporters(environ)
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    # A span per statement costs CPU on the hot path: only when someone will read them.
    if processors:
        _recording = True
        instrument_clients()


_tracer = trace.get_tracer("memorybank")
P = ParamSpec("P")
T = TypeVar("T")


def traced(name: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """A span around a coroutine function (e.g. a store's one-statement commit)."""
    def wrap(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def inner(*args: P.args, **kwargs: P.kwargs) -> T:
            if not recording():
                return await fn(*args, **kwargs)
            with _tracer.start_as_current_span(name):
                return await fn(*args, **kwargs)
        return inner
    return wrap


def traced_context(
    name: str,
) -> Callable[[Callable[P, AbstractAsyncContextManager[T]]],
              Callable[P, AbstractAsyncContextManager[T]]]:
    """A span around an async context manager's whole life (a transaction through its COMMIT)."""
    def wrap(
        fn: Callable[P, AbstractAsyncContextManager[T]],
    ) -> Callable[P, AbstractAsyncContextManager[T]]:
        @functools.wraps(fn)
        @asynccontextmanager
        async def inner(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            if not recording():
                async with fn(*args, **kwargs) as value:
                    yield value
                return
            with _tracer.start_as_current_span(name):
                async with fn(*args, **kwargs) as value:
                    yield value
        return inner
    return wrap


def recording() -> bool:
    """Whether spans go anywhere: an exporter was configured here, or a process that embeds us
    set up tracing itself (then its provider decides)."""
    return _recording or not _configured


def mark_recording() -> None:
    """For code that adds a span processor after ``setup_tracing`` (an OTLP exporter)."""
    global _recording
    _recording = True


@contextmanager
def server_span(parent: Context, name: str, tracer: trace.Tracer) -> Iterator[trace.Span]:
    """A request's server span under ``parent`` (the caller's extracted trace), current while
    the block runs: the SDK's when spans go somewhere, else a non-recording one with the same
    ids (``lean_span``)."""
    if recording():
        token = otel_context.attach(parent)
        try:
            with tracer.start_as_current_span(name, kind=trace.SpanKind.SERVER) as span:
                yield span
        finally:
            otel_context.detach(token)
        return
    lean, _ = lean_span(parent)
    token = otel_context.attach(lean)
    try:
        yield trace.get_current_span(lean)
    finally:
        otel_context.detach(token)


def lean_span(parent: Context) -> tuple[Context, SpanContext]:
    """A context holding a non-recording server span under ``parent`` (extracted from the
    request's ``traceparent``): its trace id, or a new one; a new span id either way."""
    outer = trace.get_current_span(parent).get_span_context()
    trace_id = outer.trace_id if outer.is_valid else random.getrandbits(128)
    ctx = SpanContext(trace_id, random.getrandbits(64), is_remote=False, trace_flags=_SAMPLED)
    return trace.set_span_in_context(NonRecordingSpan(ctx), parent), ctx
