"""The central writer: ``create_app(settings=None)``. Applies migrations at start, holds the
primary's connection pool and the resident twin documents for the life of the process.

The factory reads as a table of contents: the parts built from settings (``central.wiring``),
the lifespan that opens and closes them (``central.lifespan``), the routes (below), the
guard and middleware every request passes, and the fast path for twin merges in front of
Litestar (``central.fastpath``; ``CENTRAL_FAST_WRITES=false`` turns it off)."""

from __future__ import annotations

from functools import partial

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from central import agents, artifacts, audit, erasure, events, knowledge, ledger, trajectory
from central.fastpath import fast_twin_writes
from central.lifespan import run_central
from central.routes import HANDLERS, ROUTES
from central.settings import CentralSettings
from central.wiring import build_parts, dependencies
from mbhttp import RequestContextMiddleware, exception_handlers, setup_logging, setup_tracing
from mbhttp.guard import hop_guard
from mbhttp.metrics import metrics_route
from mbhttp.routes import max_body, routes_for
from mbwire import HopSigner, cells


def create_app(settings: CentralSettings | None = None) -> Litestar:
    settings = settings or CentralSettings.from_env()
    cells.serve(*settings.served_cell())  # its tokens, new ids and views name its cell
    setup_logging()  # one line per record: client text in logs is escaped
    setup_tracing("memorybank-central")
    parts = build_parts(settings)
    # One signer (one replay cache) for Litestar's guard and the fast path: a hop either
    # accepted is spent for both. Who answered, named the same by both.
    signer = HopSigner(settings.hop_secret)
    served_by = "central" if settings.shards == 1 else f"central={settings.shard}"
    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[partial(run_central, parts)],
        dependencies=dependencies(parts),
        guards=[hop_guard(signer, open_paths=frozenset({"/healthz", "/metrics"}))],
        middleware=[RequestContextMiddleware(served_by=served_by)],
        exception_handlers=exception_handlers(),
        # Plain synchronous logging (configured above): Litestar's default hands every record to
        # a queue thread, and with one access-log line per request the GIL hand-offs cost more
        # CPU than the writes (measured: 994 vs 1,299 reads/s in-process at one hub).
        logging_config=None,
        request_max_body_size=max_body(),
        openapi_config=None,
    )
    if settings.fast_writes:
        # Before Litestar's router: twin merges, by the same rules and parts (central.fastpath).
        app.asgi_handler = fast_twin_writes(app.asgi_handler, signer=signer,
                                            writer=parts.writer, served_by=served_by)
    return app


def route_handlers() -> list[ControllerRouterHandler]:
    """Central's own routes (the hubs' internal calls, the audit trail's intake), its metrics,
    and a handler for every action that writes (central serves writes only; the hubs answer
    reads). One ``HANDLERS`` dict per room, merged here."""
    return [*ROUTES, audit.intake, metrics_route(), *routes_for(
        {**HANDLERS, **knowledge.HANDLERS, **artifacts.HANDLERS,
         **ledger.HANDLERS, **events.HANDLERS, **trajectory.HANDLERS, **agents.HANDLERS,
         **erasure.HANDLERS},
        serves=lambda a: a.writes,
    )]
