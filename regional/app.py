"""A regional hub: ``create_app(settings=None)``. Serves reads from its replica and Redis, forwards
writes to central, follows the change feed. Clients and loops live in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from mbhttp import RequestContextMiddleware, exception_handlers, setup_logging, setup_tracing
from mbhttp.guard import hop_guard
from mbwire import HopSigner
from regional import ops, twins
from regional.admission import FleetAdmission
from regional.cache import TwinCache
from regional.central_client import CentralClient
from regional.follower import Follower
from regional.ratelimit import FleetLimiter
from regional.replica import ReplayClock, Replica
from regional.settings import HubSettings
from regional.twins import TwinReads


def create_app(settings: HubSettings | None = None) -> Litestar:
    settings = settings or HubSettings.from_env()
    setup_logging()  # one line per record: client text in logs is escaped
    setup_tracing(f"memorybank-hub-{settings.region}")
    replica = Replica(settings.replica_url)
    clock = ReplayClock(settings.replica_url)
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    cache = TwinCache(redis, ttl_s=settings.cache_ttl_s)
    central = CentralClient(settings.central_url, settings.central_secret,
                            timeout_s=settings.central_timeout_s)
    reads = TwinReads(replica, clock, cache, wait_s=settings.token_wait_ms / 1000,
                      use_cache=settings.cache_reads)
    follower = Follower(replica, clock, cache)
    limits_redis = (
        aioredis.Redis.from_url(settings.limits_redis_url, socket_timeout=1,
                                socket_connect_timeout=1)
        if settings.limits_redis_url else redis
    )
    admission = FleetAdmission(FleetLimiter(limits_redis))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await replica.open()
        await central.open()
        loops = [asyncio.create_task(clock.run(), name="replay-clock"),
                 asyncio.create_task(follower.run(), name="feed-follower")]
        try:
            yield
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await central.close()
            if limits_redis is not redis:
                await limits_redis.aclose()
            await redis.aclose()
            await replica.close()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False)

    return Litestar(
        route_handlers=[*ops.ROUTES, *twins.ROUTES],
        lifespan=[lifespan],
        dependencies={
            "settings": provide(settings), "clock": provide(clock), "reads": provide(reads),
            "central": provide(central), "follower": provide(follower),
        },
        guards=[hop_guard(HopSigner(settings.hop_secret), admit=admission)],
        middleware=[RequestContextMiddleware(
            served_by=f"hub={settings.region}", extra_headers={"X-MB-Hub": settings.region}
        )],
        exception_handlers=exception_handlers(),
        # Plain synchronous logging (configured above): Litestar's default hands every record to
        # a queue thread, and with one access-log line per request the GIL hand-offs cost more
        # CPU than the writes (measured: 994 vs 1,299 reads/s in-process at one hub).
        logging_config=None,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Memory Bank hub", version="1.0.0", path="/schema",
                                     use_handler_docstrings=True),
    )
