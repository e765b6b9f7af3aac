"""The local edge PoP: the Worker's core (``mbedge``) served over raw ASGI, with in-process ports.

    python -m granian --interface asgi --factory mbasgi.app:create_app

Settings come from ``EDGE_*`` variables (see ``mbedge.settings``): ``EDGE_POP``, ``EDGE_HUBS``
(JSON region -> URL), ``EDGE_HOP_SECRET``, ``EDGE_JWT_HS256_SECRET``, ``EDGE_JWT_ISSUER``,
``EDGE_DEV_MODE=1``. Ports: upstream fetch over one aiohttp session shared by all requests
(made in the lifespan; httpx clients when a test injects a transport), the exact
sliding-window limiter, a TTL LRU cache, and a background loop probing every hub's
``/healthz`` (the Worker does the same from a cron trigger).

WebSockets (``/v1/realtime``, ``/v1/yjs/{twin_id}``): authenticated at the upgrade and piped to
the nearest healthy hub (``mbasgi.websocket``, rules in ``mbedge.sockets``); a refusal is an HTTP
problem through the WebSocket Denial Response extension (granian offers it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp
import httpx
from opentelemetry import propagate, trace

from georouting import HealthBook
from mbasgi.fetch import CONNECTIONS_PER_CLIENT, UPSTREAM_CLIENTS, AiohttpFetch, HttpxFetch
from mbasgi.websocket import WebSocketProxy
from mbedge import (
    Edge,
    EdgeRequest,
    EdgeSettings,
    MemoryCache,
    Ports,
    SlidingWindowLimiter,
)
from mbedge.limits import ANONYMOUS
from mbedge.messages import lower_headers
from mbhttp import metrics
from mbhttp.tracing import server_span, setup_tracing
from mbwire import actions
from mbwire.types import TIER_LIMITS_PER_MINUTE

log = logging.getLogger("mbasgi.app")
_tracer = trace.get_tracer("memorybank.edge")
# The local PoP's own ops path, answered before the core (whose 404 covers every path outside
# /v1/, /healthz and the docs). The Worker has no such path: see edge/README.md.
METRICS_PATH = "/metrics"

Scope = dict[str, Any]
Message = dict[str, Any]


class LocalEdge:
    """An ASGI app. Started by the lifespan protocol, or lazily by the first request when the
    server skips lifespan."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        probe_interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._probe_interval = probe_interval_s
        self._clients: list[httpx.AsyncClient] = []
        self._session: aiohttp.ClientSession | None = None
        self._write_session: aiohttp.ClientSession | None = None
        self._write_clients: list[httpx.AsyncClient] = []
        self._edge: Edge | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._prober: asyncio.Task[None] | None = None
        self._ws_session: aiohttp.ClientSession | None = None
        self._ws: WebSocketProxy | None = None

    @property
    def edge(self) -> Edge:
        if self._edge is None:
            raise RuntimeError("the edge has not started")
        return self._edge

    async def start(self) -> None:
        if self._edge is not None:
            return
        s = self.settings
        fetch: AiohttpFetch | HttpxFetch
        if self._transport is None:
            self._session, self._write_session = (
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
                    auto_decompress=False, trust_env=False,
                ) for _ in range(2)
            )
            fetch = AiohttpFetch(self._session, self._write_session)
        else:
            self._clients = [
                httpx.AsyncClient(
                    transport=self._transport, trust_env=False, follow_redirects=False,
                    limits=httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT,
                                        max_keepalive_connections=CONNECTIONS_PER_CLIENT),
                )
                for _ in range(UPSTREAM_CLIENTS)
            ]
            self._write_clients = [
                httpx.AsyncClient(
                    transport=self._transport, trust_env=False, follow_redirects=False,
                    limits=httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT,
                                        max_keepalive_connections=CONNECTIONS_PER_CLIENT),
                )
                for _ in range(UPSTREAM_CLIENTS // 2)
            ]
            fetch = HttpxFetch(self._clients, self._write_clients)
        limits = {**TIER_LIMITS_PER_MINUTE, ANONYMOUS: s.anonymous_limit_per_minute}
        ports = Ports(
            fetch=fetch,
            limiter=SlidingWindowLimiter(limits),
            cache=MemoryCache(),
            health=HealthBook(s.hubs, failure_threshold=s.failure_threshold,
                              cooldown_s=s.cooldown_s),
            background=self._spawn,
        )
        self._edge = Edge(s, ports)
        # Its own session: sockets are long-lived and must not hold the HTTP pool's connections.
        self._ws_session = aiohttp.ClientSession(trust_env=False)
        self._ws = WebSocketProxy(self._edge, self._ws_session)
        if self._probe_interval > 0:
            self._prober = asyncio.get_running_loop().create_task(self._probe_loop())
        self._spawn(self._audit_loop())

    async def stop(self) -> None:
        if self._edge is not None and len(self._edge.hits):
            with contextlib.suppress(Exception):  # the hubs may be gone already
                await asyncio.wait_for(self._edge.flush_audit(), 2.0)
        for task in [*self._tasks, *([self._prober] if self._prober else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._prober] if self._prober else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in reversed([*self._clients, *self._write_clients]):
            await client.aclose()
        for session in (self._session, self._write_session):
            if session is not None:
                await session.close()
        if self._ws_session is not None:
            await self._ws_session.close()
        self._ws_session, self._ws = None, None
        self._clients, self._session, self._edge, self._prober = [], None, None, None
        self._write_clients, self._write_session = [], None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _audit_loop(self) -> None:
        """Cache hits held for the audit trail go out within their flush interval even when no
        further hit comes to check (mbedge.audit)."""
        while True:
            await asyncio.sleep(0.25)
            if self.edge.hits.due():
                await self.edge.flush_audit()

    async def _probe_loop(self) -> None:
        while True:
            try:
                await self.edge.probe_hubs()
            except Exception:
                log.exception("hub probe round failed")
            await asyncio.sleep(self._probe_interval)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self.start()
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self.start()
            assert self._ws is not None
            await self._ws(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == METRICS_PATH and scope["method"] == "GET":
            text, content_type = metrics.exposition()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(text)).encode())]})
            await send({"type": "http.response.body", "body": text})
            return
        started = time.perf_counter()
        body = await self._read_body(receive)
        headers = lower_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        )
        found = actions.match(scope["method"], scope["path"])
        name = found.action.name if found else None
        # The edge's span: the caller's trace continued, and its traceparent is what the core
        # forwards, so the hub's span is this one's child (edge → hub → central, one trace).
        span_name = f"edge {found.action.method} {found.action.path}" if found else "edge"
        with server_span(propagate.extract(headers), span_name, _tracer) as span:
            propagate.inject(headers)
            status = await self._answer(scope, headers, body, send)
            span.set_attribute("http.status_code", status)
        if name is not None:
            metrics.observe(name, status, time.perf_counter() - started)

    async def _answer(self, scope: Scope, headers: dict[str, str], body: bytes,
                      send: Any) -> int:
        raw_path = scope.get("raw_path")
        client = scope.get("client")
        request = EdgeRequest(
            method=scope["method"],
            path=raw_path.decode("latin-1") if raw_path else scope["path"],
            headers=headers,
            query=scope.get("query_string", b"").decode("latin-1"),
            body=body,
            client=client[0] if client else None,
        )
        response = await self.edge.handle(request)
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        # A length rather than chunked framing: the body is complete before the first byte goes.
        out.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        body_out = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body_out})
        if (cached := response.headers.get("x-cache")) is not None:
            if cached in ("HIT", "MISS"):  # not BYPASS etc.: only lookups count
                (metrics.edge_cache_hit if cached == "HIT" else metrics.edge_cache_miss).inc()
        return response.status

    async def _read_body(self, receive: Any) -> bytes:
        """Reads at most one byte past the limit: the core then answers 413 without the edge
        ever holding an unbounded body."""
        limit, chunks, size = self.settings.max_body_bytes, [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk[: limit + 1 - size])
            size += len(chunks[-1])
            if size > limit or not message.get("more_body", False):
                break
        return b"".join(chunks)


def create_app(
    settings: EdgeSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    probe_interval_s: float = 2.0,
) -> LocalEdge:
    """The ASGI app; reads ``EDGE_*`` from the environment only when given no settings."""
    if settings is None:  # started as a server: log like the hubs do
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        settings = EdgeSettings.from_env()
        setup_tracing(f"memorybank-edge-{settings.pop}")
    return LocalEdge(settings, transport=transport, probe_interval_s=probe_interval_s)
