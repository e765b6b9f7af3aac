"""Request id and trace context for every request: the id is echoed when the caller sent a sane
one, else made; ``traceparent`` continues the caller's trace (OpenTelemetry) so edge → hub →
central is one trace."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import propagate, trace

from mbhttp import metrics
from mbhttp.tracing import server_span
from mbwire import headers as h

REQUEST_ID_HEADER = h.REQUEST_ID
_tracer = trace.get_tracer("memorybank")
access_log = logging.getLogger("memorybank.access")


def request_id_of(request: Request[Any, Any, Any]) -> str:
    """The id the middleware settled on; for errors raised before it ran (no such route, wrong
    method), the caller's own id if sane, else a fresh one, settled here so it stays the
    same for the rest of the request (the problem's body and its ``X-Request-Id``)."""
    state = request.scope.setdefault("state", {})
    settled = state.get("request_id")
    if settled:
        return str(settled)
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    state["request_id"] = request_id = sent if h.SANE_REQUEST_ID.match(sent) else uuid.uuid4().hex
    return request_id


class RequestContextMiddleware(ASGIMiddleware):
    """Sets ``scope["state"]["request_id"]``, opens a server span, and stamps the response with
    ``X-Request-Id`` and the service's own ``X-Served-By`` part."""

    scopes = ("http", "websocket")  # type: ignore[assignment]

    def __init__(self, served_by: str, extra_headers: dict[str, str] | None = None,
                 on_answer: AnswerHook | None = None) -> None:
        self.served_by = served_by
        self.extra_headers = extra_headers or {}
        self.on_answer = on_answer

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        # Named by the route's template (an action's path), not the raw path: span names and
        # metric labels stay a bounded set, with no twin ids in them.
        handler = scope.get("route_handler")
        action = handler.opt.get("action") if handler is not None else None
        await in_context(scope, receive, send, next_app, action, self.served_by,
                         self.extra_headers, self.on_answer)


# Called once a request of an action is answered: (scope, action, status, request id). The
# hub's audit trail records twin accesses with it (regional/audit.py).
AnswerHook = Callable[[Any, Any, int, str], None]


async def in_context(scope: Scope, receive: Receive, send: Send, next_app: ASGIApp,
                     action: Any, served_by: str, extra_headers: dict[str, str],
                     on_answer: AnswerHook | None = None) -> None:
    """What ``RequestContextMiddleware`` does around a request, for any ASGI app: also run by
    a hub's fast path (``regional.fastpath``), which answers before Litestar's routing."""
    headers = scope.get("state", {}).get("raw_headers") or {
        k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    sent = headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if h.SANE_REQUEST_ID.match(sent) else uuid.uuid4().hex
    state = scope.setdefault("state", {})
    state["request_id"] = request_id
    state["raw_headers"] = headers  # decoded once; the hop guard reads them too
    parent = propagate.extract(headers)
    route = action.path if action is not None else scope["path"]
    with server_span(parent, f"{scope.get('method', 'WS')} {route}", _tracer) as span:
        span.set_attribute("memorybank.request_id", request_id)
        span.set_attribute("http.route", route)
        ctx = span.get_span_context()
        trace_id = f"{ctx.trace_id:032x}"
        started, status = time.perf_counter(), 0

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                stamps = {
                    h.REQUEST_ID: request_id,
                    # W3C Trace Context level 2: tells the caller which trace answered.
                    "traceresponse": f"00-{trace_id}-{ctx.span_id:016x}-01",
                    h.SERVED_BY: served_by,
                    **extra_headers,
                    # Headers a guard decided on (e.g. the fleet rate limit's counts).
                    **scope["state"].get("response_headers", {}),
                }
                message["headers"] = stamp(message.get("headers") or (), stamps)
                span.set_attribute("http.status_code", message["status"])
            await send(message)

        await next_app(scope, receive, stamped)
        elapsed = time.perf_counter() - started
        if action is not None:  # health probes and scrapes are not the API's traffic
            metrics.observe(action.name, status, elapsed)
            if on_answer is not None:
                on_answer(scope, action, status, request_id)
        # The path is logged as the client sent it (decoded: %0a is a newline here);
        # mbhttp.logs' formatter escapes it, as it does every record's client text.
        access_log.info(
            "%s %s %d %.1fms request_id=%s trace_id=%s", scope.get("method", "WS"),
            scope["path"], status, elapsed * 1000,
            request_id, trace_id,
        )


def stamp(headers: Any, stamps: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """``headers`` (ASGI pairs) with ``stamps`` set: any header of the same name replaced. One
    pass over the headers, not a search per stamp (a read's response carries a dozen)."""
    out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in stamps.items()]
    names = {k for k, _ in out}
    return [(k, v) for k, v in headers if k.lower() not in names] + out


def outbound_trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) for a call made inside the current span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
