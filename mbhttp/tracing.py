"""OpenTelemetry set-up: spans always exist (so trace ids flow across tiers), and are exported
only when configured: ``MEMORYBANK_OTEL=console`` prints them; an OTLP exporter can be plugged in
the same place in production.

With no exporter, a request gets a non-recording span: the same trace id (the caller's, else a
new one) and a fresh span id, put in the context so logs, ``traceresponse`` and outbound
``traceparent`` carry them, without the SDK's span objects, which nobody would read (measured:
about 60 µs per request at a hub, more than a whole bare Litestar request)."""

from __future__ import annotations

import os
import random

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

_configured = False
_recording = False
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def setup_tracing(service_name: str) -> None:
    global _configured, _recording
    if _configured:
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("MEMORYBANK_OTEL") == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        _recording = True
    trace.set_tracer_provider(provider)


def recording() -> bool:
    """Whether spans go anywhere: an exporter was configured here, or a process that embeds us
    set up tracing itself (then its provider decides)."""
    return _recording or not _configured


def mark_recording() -> None:
    """For code that adds a span processor after ``setup_tracing`` (an OTLP exporter)."""
    global _recording
    _recording = True


def lean_span(parent: Context) -> tuple[Context, SpanContext]:
    """A context holding a non-recording server span under ``parent`` (extracted from the
    request's ``traceparent``): its trace id, or a new one; a new span id either way."""
    outer = trace.get_current_span(parent).get_span_context()
    trace_id = outer.trace_id if outer.is_valid else random.getrandbits(128)
    ctx = SpanContext(trace_id, random.getrandbits(64), is_remote=False, trace_flags=_SAMPLED)
    return trace.set_span_in_context(NonRecordingSpan(ctx), parent), ctx
