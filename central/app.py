"""The central writer: ``create_app(settings=None)``. Applies migrations at start, holds the
primary's connection pool and the resident twin documents for the life of the process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide

from central.migrate import apply_migrations
from central.routes import ROUTES
from central.settings import CentralSettings
from central.store import Store
from central.twins import TwinWriter
from mbhttp import RequestContextMiddleware, exception_handlers, setup_tracing
from mbhttp.guard import hop_guard
from mbwire import HopSigner


def create_app(settings: CentralSettings | None = None) -> Litestar:
    settings = settings or CentralSettings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    setup_tracing("memorybank-central")
    store = Store(settings.database_url)
    writer = TwinWriter(store, resident=settings.resident_twins)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await apply_migrations(settings.database_url)
        await store.open()
        try:
            yield
        finally:
            await store.close()

    return Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        dependencies={
            "store": Provide(lambda: store, sync_to_thread=False),
            "writer": Provide(lambda: writer, sync_to_thread=False),
        },
        guards=[hop_guard(HopSigner(settings.hop_secret))],
        middleware=[RequestContextMiddleware(served_by="central")],
        exception_handlers=exception_handlers(),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
    )
