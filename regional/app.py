"""A regional hub: ``create_app(settings=None)``. Serves reads from its replica and Redis, forwards
writes to central, follows the change feed. Clients and loops live in the lifespan.

The factory reads as a table of contents: the objects built from settings (``regional.wiring``),
the lifespan that opens and closes them (``regional.lifespan``), the routes (``route_handlers``:
every room's ``HANDLERS``, collected in one place), the dependencies, and the ASGI wrappers in
front of Litestar (``wrap_asgi``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from mbhttp import RequestContextMiddleware, exception_handlers, setup_logging, setup_tracing
from mbhttp.docs import docs_routes
from mbhttp.guard import hop_guard
from mbhttp.metrics import metrics_route
from mbhttp.routes import max_body, routes_for
from mbwire import cells
from mbwire import headers as h
from regional import (
    agents,
    artifacts,
    audit,
    batch,
    erasures,
    events,
    export,
    ledger,
    ops,
    recommend,
    search,
    trajectory,
    twins,
)
from regional.fastpath import body_answers, fast_bodies, fast_reads
from regional.lifespan import run_hub
from regional.realtime import realtime_endpoint
from regional.settings import HubSettings
from regional.wiring import Hub, build_hub, hot_redis
from regional.yjs import yjs_endpoint

__all__ = ["create_app", "hot_redis"]  # hot_redis: where it lived before regional.wiring


def create_app(settings: HubSettings | None = None) -> Litestar:
    settings = settings or HubSettings.from_env()
    cells.serve(*settings.served_cell())  # its tokens and views name its cell
    setup_logging()  # one line per record: client text in logs is escaped
    setup_tracing(f"memorybank-hub-{settings.region}")
    hub = build_hub(settings)
    # Who answered, named the same by Litestar's middleware and by the fast path.
    served_by, stamps = f"hub={settings.region}", {h.HUB: settings.region}
    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[partial(run_hub, hub)],
        dependencies=dependencies(hub),
        guards=[hop_guard(hub.signer, admit=hub.admission,
                          open_paths=frozenset({"/healthz", "/metrics"}))],
        middleware=[RequestContextMiddleware(served_by=served_by, extra_headers=stamps,
                                             on_answer=hub.audit.after_answer)],
        exception_handlers=exception_handlers(),
        # Plain synchronous logging (configured above): Litestar's default hands every record to
        # a queue thread, and with one access-log line per request the GIL hand-offs cost more
        # CPU than the writes (measured: 994 vs 1,299 reads/s in-process at one hub).
        logging_config=None,
        # Each action checks its own limit (mbhttp.routes.read_body); this is the largest.
        request_max_body_size=max_body(),
        # The document is generated from the action table (mbhttp.docs), not by Litestar.
        openapi_config=None,
    )
    wrap_asgi(app, hub, served_by=served_by, stamps=stamps)
    return app


def handlers() -> dict[str, Callable[..., Any]]:
    """A handler for every action: each room's ``HANDLERS`` (and the writes twins forwards to
    central), merged here in one dict."""
    return {
        **twins.HANDLERS, **ops.HANDLERS, **search.HANDLERS, **artifacts.HANDLERS,
        **twins.FORWARDED, **ledger.HANDLERS, **batch.HANDLERS,
        **events.HANDLERS, **trajectory.HANDLERS,
        **agents.HANDLERS, **recommend.HANDLERS,
        **export.HANDLERS, **audit.HANDLERS, **erasures.HANDLERS,
    }


def route_handlers() -> list[ControllerRouterHandler]:
    """The hub's own routes (health, docs, metrics) and every action's (``handlers``)."""
    return [*ops.ROUTES, *audit.ROUTES, *docs_routes(), metrics_route(), *routes_for(handlers())]


def dependencies(hub: Hub) -> dict[str, Provide]:
    """What handlers may ask for by name, from the hub's objects and the artifact blob store."""

    def provide(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False)

    return {
        "settings": provide(hub.settings), "clock": provide(hub.clock),
        "reads": provide(hub.reads), "central": provide(hub.central),
        "follower": provide(hub.follower), "peers": provide(hub.peers),
        "knowledge": provide(hub.knowledge), "indexer": provide(hub.indexer),
        "audit": provide(hub.audit),
        **artifacts.dependencies(hub.settings),
    }


def wrap_asgi(app: Litestar, hub: Hub, *, served_by: str, stamps: dict[str, str]) -> None:
    """Put the realtime endpoint, the Yjs endpoint and the fast paths in front of Litestar's
    router. Order matters: each wraps the handler before it, so the last one wrapped sees a
    request first. A request meets the fast reads, the fast bodies, then the Yjs endpoint
    (WebSockets under /v1/yjs/), then the realtime endpoint (every other WebSocket), then
    Litestar."""
    settings = hub.settings
    # Before Litestar's router, which would close the socket (the server's bare 403).
    app.asgi_handler = realtime_endpoint(app.asgi_handler, signer=hub.signer, broker=hub.broker,
                                         feed=hub.realtime_feed, admission=hub.admission,
                                         slots=hub.slots, region=settings.region,
                                         ping_s=settings.realtime_ping_s,
                                         wait_s=settings.token_wait_ms / 1000, audit=hub.audit)
    # Before the realtime endpoint, which answers every other WebSocket path with a 404.
    app.asgi_handler = yjs_endpoint(app.asgi_handler, signer=hub.signer, broker=hub.broker,
                                    rooms=hub.rooms, writes=hub.yjs_writes,
                                    admission=hub.admission, clock=hub.clock, slots=hub.slots,
                                    ping_s=settings.realtime_ping_s,
                                    wait_s=settings.token_wait_ms / 1000, audit=hub.audit)
    # Before Litestar too (regional.fastpath): the writes relayed to central as they came and
    # knowledge queries; profile and grants reads from the twin's view, wallet reads of one
    # statement. Wrapped last, so outermost: an HTTP request they answer never reaches the
    # realtime check.
    answers = body_answers(handlers(), hub.central, hub.knowledge, hub.audit)
    app.asgi_handler = fast_bodies(app.asgi_handler, signer=hub.signer, admit=hub.admission,
                                   answers=answers, served_by=served_by, extra_headers=stamps,
                                   on_answer=hub.audit.after_answer)
    app.asgi_handler = fast_reads(app.asgi_handler, signer=hub.signer, admit=hub.admission,
                                  reads=hub.reads, served_by=served_by,
                                  extra_headers=stamps, on_answer=hub.audit.after_answer)
