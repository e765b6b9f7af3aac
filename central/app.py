"""The central writer: ``create_app(settings=None)``. Applies migrations at start, holds the
primary's connection pool and the resident twin documents for the life of the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from litestar import Litestar
from litestar.di import Provide

from central import agents, artifacts, events, knowledge, ledger, partitions, trajectory
from central.migrate import apply_migrations
from central.replay import prune as prune_write_keys
from central.routes import HANDLERS, ROUTES
from central.settings import CentralSettings
from central.store import Store
from central.twins import TwinWriter
from knowledge.embed import close_embedder, open_embedder
from mbhttp import RequestContextMiddleware, exception_handlers, setup_logging, setup_tracing
from mbhttp.guard import hop_guard
from mbhttp.metrics import metrics_route
from mbhttp.routes import max_body, routes_for
from mbwire import HopSigner, Unavailable


def create_app(settings: CentralSettings | None = None) -> Litestar:
    settings = settings or CentralSettings.from_env()
    setup_logging()  # one line per record: client text in logs is escaped
    setup_tracing("memorybank-central")
    store = Store(settings.database_url, pool_timeout_s=settings.pool_timeout_ms / 1000)
    twin_committer = events.committer(store, window_s=settings.twin_commit_window_ms / 1000,
                                      max_items=settings.twin_commit_max)
    writer = TwinWriter(store, resident=settings.resident_twins, committer=twin_committer)
    committer = events.committer(store, window_s=settings.event_commit_window_ms / 1000,
                                 max_items=settings.event_commit_max)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Loaded (the model's sha256 checked) or its dimension checked before taking traffic: a
        # bad embedder stops central at start, not at its first ingest.
        app.state.embedder = await open_embedder(
            settings.embedder, url=settings.embedder_url, model=settings.embedder_model,
            api_key=settings.embedder_api_key, dim=settings.embedder_dim,
        )
        app.state.max_doc_chunks = settings.max_doc_chunks
        try:
            await apply_migrations(settings.database_url)
            await store.open()
            chores: list[asyncio.Task[None]] = []
            if settings.shard == 0:  # one shard keeps house, so the others never race it
                chores.append(asyncio.create_task(prune_forever(), name="feed-pruner"))
                await maintain_partitions()  # before traffic: today's partition exists
                chores.append(asyncio.create_task(partitions_forever(), name="event-partitions"))
            try:
                yield
            finally:
                for chore in chores:
                    chore.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await chore
                await committer.close()
                await twin_committer.close()
                await store.close()
        finally:
            await close_embedder(app.state.embedder)

    async def prune_forever() -> None:
        while True:
            await asyncio.sleep(settings.prune_every_s)
            try:
                pruned = await store.prune_feed(settings.feed_retention_s)
                async with store.write() as tx:
                    keys = await prune_write_keys(tx, settings.write_key_retention_h)
            except Unavailable as exc:
                logging.getLogger("memorybank.central").warning("feed prune skipped: %s", exc)
                continue
            if pruned:
                logging.getLogger("memorybank.central").info("pruned %d feed rows", pruned)
            if keys:
                logging.getLogger("memorybank.central").info("pruned %d write keys", keys)

    async def maintain_partitions() -> None:
        try:
            async with store.pool.connection(timeout=10) as conn:
                await partitions.maintain(
                    conn, ahead_days=settings.event_partitions_ahead_days,
                    retention_days=settings.event_retention_days)
        except (psycopg.Error, TimeoutError) as exc:  # the default partition catches events
            logging.getLogger("memorybank.central").warning("event partitions skipped: %s", exc)

    async def partitions_forever() -> None:
        while True:
            await asyncio.sleep(settings.event_maintain_every_s)
            await maintain_partitions()

    return Litestar(
        route_handlers=[*ROUTES, metrics_route(), *routes_for(
            {**HANDLERS, **knowledge.HANDLERS, **artifacts.HANDLERS,
             **ledger.HANDLERS, **events.HANDLERS, **trajectory.HANDLERS, **agents.HANDLERS},
            serves=lambda a: a.writes,
        )],
        lifespan=[lifespan],
        dependencies={
            "store": Provide(lambda: store, sync_to_thread=False),
            "writer": Provide(lambda: writer, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "events": Provide(lambda: committer, sync_to_thread=False),
            **artifacts.dependencies(settings),
        },
        guards=[hop_guard(HopSigner(settings.hop_secret),
                          open_paths=frozenset({"/healthz", "/metrics"}))],
        middleware=[RequestContextMiddleware(
            served_by="central" if settings.shards == 1 else f"central={settings.shard}")],
        exception_handlers=exception_handlers(),
        # Plain synchronous logging (configured above): Litestar's default hands every record to
        # a queue thread, and with one access-log line per request the GIL hand-offs cost more
        # CPU than the writes (measured: 994 vs 1,299 reads/s in-process at one hub).
        logging_config=None,
        request_max_body_size=max_body(),
        openapi_config=None,
    )
