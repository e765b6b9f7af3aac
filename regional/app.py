"""A regional hub: ``create_app(settings=None)``. Serves reads from its replica and Redis, forwards
writes to central, follows the change feed. Clients and loops live in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.di import Provide

from mbhttp import RequestContextMiddleware, exception_handlers, setup_logging, setup_tracing
from mbhttp.docs import docs_routes
from mbhttp.guard import hop_guard
from mbhttp.metrics import metrics_route
from mbhttp.routes import max_body, routes_for
from mbwire import HopSigner
from mbwire import headers as h
from mbwire.rules import request_cost
from regional import (
    agents,
    artifacts,
    batch,
    events,
    ledger,
    ops,
    recommend,
    search,
    trajectory,
    twins,
)
from regional.admission import FleetAdmission
from regional.breaker import Breaker
from regional.cache import TwinCache
from regional.central_client import CentralClient
from regional.fastpath import fast_twin_reads
from regional.follower import Follower
from regional.hub_metrics import watch_hub
from regional.index import IndexFollower, make_index
from regional.lease import Lease
from regional.near import NearCache
from regional.ops import PeerHealth
from regional.ratelimit import FleetLimiter
from regional.realtime import Broker, RealtimeFeed, realtime_endpoint
from regional.realtime.quota import FleetSlots
from regional.replica import ReplayClock, Replica
from regional.search import KnowledgeSearch, hub_embedder
from regional.settings import HubSettings
from regional.twins import TwinReads


def hot_redis(url: str, *, connect_timeout_s: float) -> aioredis.Redis:
    """A client for the per-request calls (cache lookup and fill, fleet limit), made without a
    socket timeout: with one, redis-py sends every command through ``asyncio.wait_for``, a new
    task each time (a fifth of a cached read's CPU in a py-spy profile). Its callers bound each
    call with ``asyncio.timeout`` instead, so a hung Redis still costs at most that long."""
    # Explicitly None: redis-py 8 defaults to a 5 s socket timeout when none is given.
    return aioredis.Redis.from_url(url, socket_timeout=None,
                                   socket_connect_timeout=connect_timeout_s)


def create_app(settings: HubSettings | None = None) -> Litestar:
    settings = settings or HubSettings.from_env()
    setup_logging()  # one line per record: client text in logs is escaped
    setup_tracing(f"memorybank-hub-{settings.region}")
    replica = Replica(settings.replica_url,
                      pool_timeout_s=settings.replica_pool_timeout_ms / 1000)
    central = CentralClient(settings.central_url, settings.central_secret,
                            timeout_s=settings.central_timeout_s)
    clock = ReplayClock(settings.replica_url, primary=central.primary_position)
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    hot = hot_redis(settings.redis_url, connect_timeout_s=2)
    cache = TwinCache(redis, ttl_s=settings.cache_ttl_s, hot=hot, timeout_s=2)
    near = NearCache(settings.near_cache_entries)
    reads = TwinReads(replica, clock, cache, wait_s=settings.token_wait_ms / 1000,
                      use_cache=settings.cache_reads, near=near)
    follower = Follower(replica, clock, cache)
    limits_redis = (
        hot_redis(settings.limits_redis_url, connect_timeout_s=1)
        if settings.limits_redis_url else hot
    )
    limiter = FleetLimiter(limits_redis, timeout_s=1, lease_units=settings.limits_lease_units,
                           lease_hold_s=settings.limits_lease_hold_ms / 1000)
    admission = FleetAdmission(limiter, cost=request_cost, breaker=Breaker(
        failures=settings.limits_breaker_failures, cooldown_s=settings.limits_breaker_cooldown_s))
    # Granian may run several workers: the follower runs in the one holding this lease. Each
    # worker keeps its own replay clock: it only reads the replica's position (no side effect),
    # and a reader waiting on a token must see it move without a round trip elsewhere.
    lease = Lease(redis, "mb:feed:leader", ttl_ms=settings.follower_lease_ms)
    # The search index: per worker process, each following the feed itself (not under the
    # lease: every worker's own index must move).
    embedder = hub_embedder(settings)
    indexer = IndexFollower(replica, clock, make_index(embedder, settings.qdrant_url),
                            embedder.name)
    knowledge = KnowledgeSearch(replica, clock, indexer, embedder,
                                wait_s=settings.index_wait_ms / 1000)
    watch_hub(clock, follower, indexer, {"limits": lambda: admission.breaker.state})
    realtime_feed = RealtimeFeed(replica, clock)
    broker = Broker(replica, limits=settings.realtime_limits,
                    max_connections=settings.realtime_max_connections,
                    queue_max=settings.realtime_queue_max)
    realtime_feed.sink, realtime_feed.near = broker.publish, near
    # Connections per caller are counted fleet-wide, in the Redis the fleet limiter uses.
    slots = FleetSlots(limits_redis, settings.realtime_limits)
    signer = HopSigner(settings.hop_secret)
    peers = PeerHealth({r: u for r, u in settings.peers.items() if r != settings.region},
                       timeout_s=settings.peer_timeout_s)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # The embedder answers before the hub takes traffic: the local model loads (its files'
        # sha256 checked), a remote one shows the dimension it really returns.
        await embedder.embed(["dimension check"])
        await replica.open()
        await central.open()
        await peers.open()
        try:
            # Long-lived loops: a loop that crashes takes the hub down with it (loudly) rather
            # than leaving it serving without a clock or follower.
            async with asyncio.TaskGroup() as loops:
                tasks = [loops.create_task(clock.run(), name="replay-clock"),
                         loops.create_task(lease.hold(follower.run, "feed follower"),
                                           name="feed-follower"),
                         loops.create_task(indexer.run(), name="index-follower"),
                         loops.create_task(realtime_feed.run(), name="realtime-feed"),
                         loops.create_task(slots.run(broker), name="realtime-slots")]
                try:
                    yield
                finally:
                    broker.close_all(1001)  # sockets: reconnect elsewhere with since
                    for task in tasks:
                        task.cancel()
        finally:
            await peers.close()
            await indexer.index.close()
            await central.close()
            if limits_redis is not hot:
                await limits_redis.aclose()
            await hot.aclose()
            await redis.aclose()
            await replica.close()

    served_by, stamps = f"hub={settings.region}", {h.HUB: settings.region}

    def provide(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False)

    app = Litestar(
        route_handlers=[
            *ops.ROUTES, *docs_routes(), metrics_route(),
            *routes_for({
                **twins.HANDLERS, **ops.HANDLERS, **search.HANDLERS, **artifacts.HANDLERS,
                **twins.FORWARDED, **ledger.HANDLERS, **batch.HANDLERS,
                **events.HANDLERS, **trajectory.HANDLERS,
                **agents.HANDLERS, **recommend.HANDLERS,
            }),
        ],
        lifespan=[lifespan],
        dependencies={
            "settings": provide(settings), "clock": provide(clock), "reads": provide(reads),
            "central": provide(central), "follower": provide(follower),
            "peers": provide(peers), "knowledge": provide(knowledge),
            "indexer": provide(indexer), **artifacts.dependencies(settings),
        },
        guards=[hop_guard(signer, admit=admission,
                          open_paths=frozenset({"/healthz", "/metrics"}))],
        middleware=[RequestContextMiddleware(served_by=served_by, extra_headers=stamps)],
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
    # Before Litestar's router, which would close the socket (the server's bare 403).
    app.asgi_handler = realtime_endpoint(app.asgi_handler, signer=signer, broker=broker,
                                         feed=realtime_feed, admission=admission, slots=slots,
                                         region=settings.region,
                                         ping_s=settings.realtime_ping_s,
                                         wait_s=settings.token_wait_ms / 1000)
    # Before Litestar too: profile reads the worker's near cache can answer (regional.fastpath).
    app.asgi_handler = fast_twin_reads(app.asgi_handler, signer=signer, admit=admission,
                                       reads=reads, served_by=served_by, extra_headers=stamps)
    return app
