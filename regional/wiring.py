"""What a hub is made of, built once from its settings: the replica and its replay clock, the
client for central, the Redis clients, the read path, the feed and index followers, fleet
admission, realtime and the peers' health. Gathered in one frozen ``Hub`` so the app factory, the
lifespan (``regional.lifespan``), the dependencies and the ASGI wrappers name the same objects.

Constructed only (no I/O): the lifespan opens what needs opening, in order, and closes it in
reverse."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from knowledge.embed import Embedder
from mbwire import ConsistencyToken, HopSigner
from mbwire.rules import request_cost
from regional.admission import FleetAdmission
from regional.audit import AuditRecorder
from regional.breaker import Breaker
from regional.cache import TwinCache
from regional.central_client import CentralClient
from regional.follower import Follower
from regional.hub_metrics import watch_hub
from regional.index_client import SearchIndex, index_for
from regional.lease import Lease
from regional.near import NearCache
from regional.ops import PeerHealth
from regional.ratelimit import FleetLimiter
from regional.realtime import Broker, RealtimeFeed
from regional.realtime.feed import Row, Sink
from regional.realtime.quota import FleetSlots, socket_cap
from regional.replica import ReplayClock, Replica
from regional.search import KnowledgeSearch, hub_embedder
from regional.settings import HubSettings
from regional.twins import TwinReads
from regional.yjs import AwarenessRelay, Rooms, Writes
from sealing import Keyring


def hot_redis(url: str, *, connect_timeout_s: float) -> aioredis.Redis:
    """A client for the per-request calls (cache lookup and fill, fleet limit), made without a
    socket timeout: with one, redis-py sends every command through ``asyncio.wait_for``, a new
    task each time (a fifth of a cached read's CPU in a py-spy profile). Its callers bound each
    call with ``asyncio.timeout`` instead, so a hung Redis still costs at most that long."""
    # Explicitly None: redis-py 8 defaults to a 5 s socket timeout when none is given.
    return aioredis.Redis.from_url(url, socket_timeout=None,
                                   socket_connect_timeout=connect_timeout_s)


@dataclass(frozen=True, slots=True)
class Hub:
    """The objects a hub holds for the life of the process (one set per Granian worker)."""

    settings: HubSettings
    replica: Replica
    central: CentralClient
    clock: ReplayClock
    redis: aioredis.Redis  # with socket timeouts: the lease and other background calls
    hot: aioredis.Redis  # without: per-request calls, each bounded by its caller (hot_redis)
    limits_redis: aioredis.Redis  # ``hot`` itself unless limits have a Redis of their own
    reads: TwinReads
    follower: Follower
    admission: FleetAdmission
    lease: Lease
    embedder: Embedder
    indexer: SearchIndex
    knowledge: KnowledgeSearch
    realtime_feed: RealtimeFeed
    broker: Broker
    slots: FleetSlots
    signer: HopSigner
    peers: PeerHealth
    rooms: Rooms               # Yjs providers' twins in this worker (regional/yjs)
    yjs_writes: Writes
    relay: AwarenessRelay      # awareness to other workers and regions
    relay_redis: aioredis.Redis  # its pub/sub connection, on the limits Redis
    audit: AuditRecorder       # twin accesses, sent to central in batches


def build_hub(settings: HubSettings) -> Hub:
    """Every client and loop object, in dependency order: the read path first (replica, clock,
    Redis, caches), then admission, the follower's lease, search, realtime and the peers."""
    keyring = Keyring.from_settings(settings)
    replica = Replica(settings.replica_url,
                      pool_timeout_s=settings.replica_pool_timeout_ms / 1000, keys=keyring)
    central = CentralClient(settings.central_url, settings.central_secret,
                            timeout_s=settings.central_timeout_s)
    clock = ReplayClock(settings.replica_url, primary=central.primary_position,
                        quiet_s=settings.clock_quiet_ms / 1000,
                        unheard_s=settings.clock_unheard_ms / 1000)
    central.on_write = clock.expect_change  # a write acknowledged: its change is on the way
    replica.clock = clock  # reads take their position from it (ReplicaPool.floor)
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    hot = hot_redis(settings.redis_url, connect_timeout_s=2)
    cache = TwinCache(redis, ttl_s=settings.cache_ttl_s, hot=hot, timeout_s=2)
    near = NearCache(settings.near_cache_bytes)
    reads = TwinReads(replica, clock, cache, wait_s=settings.token_wait_ms / 1000,
                      use_cache=settings.cache_reads, near=near)
    realtime_feed = RealtimeFeed(replica, clock, step_every_s=settings.feed_step_ms / 1000)
    # In the worker holding the feed lease the follower takes the realtime tail's reads.
    follower = Follower(replica, clock, cache, feed=realtime_feed)
    limits_redis = (
        hot_redis(settings.limits_redis_url, connect_timeout_s=1)
        if settings.limits_redis_url else hot
    )
    admission = fleet_admission(settings, limits_redis)
    # Granian may run several workers: the follower runs in the one holding this lease. Each
    # worker keeps its own replay clock: it only reads the replica's position (no side effect),
    # and a reader waiting on a token must see it move without a round trip elsewhere.
    lease = Lease(redis, "mb:feed:leader", ttl_ms=settings.follower_lease_ms)
    # The search index: the hub's index service (one per hub, whatever the workers), or one
    # in this worker when no service is configured.
    embedder = hub_embedder(settings)
    indexer = index_for(settings, replica, clock)
    knowledge = KnowledgeSearch(replica, clock, indexer, embedder,
                                wait_s=settings.index_wait_ms / 1000)
    watch_hub(clock, follower, indexer, {"limits": lambda: admission.breaker.state}, embedder)
    broker = Broker(replica, limits=settings.realtime_limits,
                    max_connections=socket_cap(settings.realtime_max_connections),
                    queue_max=settings.realtime_queue_max)
    # Yjs providers: awareness crosses workers and regions on a Redis of the cell's zone (the
    # fleet-wide limits Redis for the global zone); the realtime tail hands its rows to the
    # providers' rooms too.
    relay_url = settings.relay_redis_url or settings.limits_redis_url or settings.redis_url
    relay_redis = aioredis.Redis.from_url(relay_url, socket_timeout=None,
                                          socket_connect_timeout=2)
    relay_publisher = (hot_redis(settings.relay_redis_url, connect_timeout_s=1)
                       if settings.relay_redis_url else limits_redis)
    relay = AwarenessRelay(relay_redis, relay_publisher, queue_max=settings.yjs_relay_queue_max)
    rooms = Rooms(replica, relay, awareness_timeout_s=settings.yjs_awareness_timeout_s)
    yjs_writes = Writes(central, admission, resync=rooms.resync,
                        pending_max=settings.yjs_pending_max)
    realtime_feed.sink, realtime_feed.near = both(broker.publish, rooms.publish), near
    clock.listening = lambda: bool(broker.connections)  # realtime and Yjs sockets both
    # Connections per caller are counted fleet-wide, in the Redis the fleet limiter uses.
    slots = FleetSlots(limits_redis, settings.realtime_limits)
    signer = HopSigner(settings.hop_secret)
    peers = PeerHealth({r: u for r, u in settings.peers.items() if r != settings.region},
                       timeout_s=settings.peer_timeout_s)
    return Hub(settings=settings, replica=replica, central=central, clock=clock, redis=redis,
               hot=hot, limits_redis=limits_redis, reads=reads, follower=follower,
               admission=admission, lease=lease, embedder=embedder, indexer=indexer,
               knowledge=knowledge, realtime_feed=realtime_feed, broker=broker, slots=slots,
               signer=signer, peers=peers, rooms=rooms, yjs_writes=yjs_writes, relay=relay,
               relay_redis=relay_redis, audit=AuditRecorder(
                   central, settings.audit_key, settings.region,
                   flush_ms=settings.audit_flush_ms, batch=settings.audit_batch,
                   buffer_max=settings.audit_buffer_max))


def both(first: Sink, second: Sink) -> Sink:
    """One feed sink that hands each batch to two, in order."""

    async def sink(rows: list[Row], token: ConsistencyToken) -> None:
        await first(rows, token)
        await second(rows, token)

    return sink


def fleet_admission(settings: HubSettings, limits_redis: aioredis.Redis) -> FleetAdmission:
    """The fleet-wide rate limit in front of every request, behind a breaker: when the limits'
    Redis keeps failing the hub stops asking it for a while instead of slowing every call."""
    limiter = FleetLimiter(limits_redis, timeout_s=1, lease_units=settings.limits_lease_units,
                           lease_hold_s=settings.limits_lease_hold_ms / 1000)
    return FleetAdmission(limiter, cost=request_cost, breaker=Breaker(
        failures=settings.limits_breaker_failures, cooldown_s=settings.limits_breaker_cooldown_s))
