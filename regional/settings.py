"""A hub's settings: one frozen Struct, read from ``HUB_*`` environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

from knowledge.embed import Compute
from mbwire.cells import Cell, CellMap, served_from
from mbwire.envcheck import check_known

AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]


class HubSettings(msgspec.Struct, frozen=True, kw_only=True):
    region: str
    replica_url: str
    redis_url: str
    central_url: str         # central's shards, comma-separated, in shard order
    hop_secret: str          # what the edge signs with; the hub verifies it
    central_secret: str      # what the hub signs its calls to central with
    limits_redis_url: str = ""   # the fleet-wide limiter's Redis; empty = this hub's own
    # The cell this hub serves (its replica, Redis and central are that cell's) and the fleet's
    # catalog (JSON list of {"name", "zone", "regions"}, mbwire.cells); empty: the home cell.
    cell: str = "g1"
    cells: str = ""
    # Where Yjs awareness (who is editing, their cursors: personal data) crosses workers and
    # regions: a Redis inside the cell's zone. Empty: the limits Redis (for the global zone).
    relay_redis_url: str = ""
    regions: str = "ams,iad,sin"
    primary_region: str = "ams"
    # How long a read waits for its consistency token. Below the edge's per-hub attempt timeout
    # (EdgeSettings.attempt_timeout_s, 1.5 s), so a hub waiting on purpose answers 503 itself
    # before the edge would time it out and count it as sick.
    token_wait_ms: int = 1000
    # How long a read waits for one of the replica pool's connections (none while the replica
    # restarts) before answering 503 + Retry-After: well below the edge's per-hub attempt
    # timeout, so the edge moves the read to another region instead of timing out here.
    replica_pool_timeout_ms: int = 500
    # The realtime tail (and the cache follower riding it) reads the feed at most this often:
    # a move of the replica within it waits for the next step (what a subscriber or a cache
    # invalidation may wait more); a read holding a token never waits on it.
    feed_step_ms: float = 5.0
    # The replay clock's nap after a second in which the replica did not move and this hub
    # forwarded no write, while no realtime or Yjs socket is open on the worker
    # (regional.replica.clock.QUIET_AFTER_S), instead of its 10 ms: an idle hub polls its
    # replica 5 times a second, not 100. What it costs: the first change after such a spell
    # that came from another region evicts the worker's caches up to this much later (no
    # subscriber waits on it: with one connected the clock stays at 10 ms). A read holding a
    # token never waits on it. 0 (or anything below the unheard nap): the unheard nap.
    clock_quiet_ms: float = 200.0
    # The replay clock's nap while the replica moves and no realtime or Yjs socket is open on
    # the worker, instead of its 10 ms: under writes a hub polls its replica 10 times a second,
    # not 100, and its feed tail reads in batches that size. What it costs: a change evicts the
    # worker's caches up to this much after the replica shows it (a token-less read may see the
    # old view that much longer, well within the edge's own 5 s cache of it; a read holding a
    # token wakes the clock and never waits on it). With a socket open, 10 ms: no subscriber's
    # message waits on it. 0: 10 ms (until a quiet second). Measured (README, "Reads at
    # scale"): 25 -> 100 ms took 13-22 % off a hub's CPU per request under the mix, relative
    # to the edges'.
    clock_unheard_ms: float = 100.0
    cache_ttl_s: int = 300
    cache_reads: bool = True      # off only to measure uncached reads (bench/spine_bench.py)
    # Bytes of twin views each worker keeps in its own memory (regional/near.py: counted as
    # their encoded size, least recently used dropped first); 0 = none.
    near_cache_bytes: int = 64 << 20
    central_timeout_s: float = 10.0
    max_body_bytes: int = 1 << 20
    # region -> base URL of the other hubs (HUB_PEERS is a JSON object): /v1/regions asks their
    # /healthz, so a region whose hub is dead is not reported up on replication alone.
    peers: dict[str, str] = {}
    peer_timeout_s: float = 0.5
    # The breaker in front of the limits Redis: open after this many failures in a row, then
    # let one request probe it after the cooldown.
    limits_breaker_failures: int = 3
    # A busy caller's units are taken from the limits Redis in leases of up to this many,
    # spent by this worker within limits_lease_hold_ms (regional.ratelimit); 0 = a round trip
    # per request.
    limits_lease_units: int = 64
    limits_lease_hold_ms: int = 500
    limits_breaker_cooldown_s: float = 5.0
    # The feed follower runs in one worker per hub: the holder of a lease in the hub's Redis.
    follower_lease_ms: int = 5000
    # Artifacts (blobs/, regional/artifacts.py): the same blob store and URL secret as central
    # (CENTRAL_BLOB_URL, CENTRAL_ARTIFACT_URL_SECRET); the public edge this hub's download URLs
    # point at (always the edge: the stored bytes are sealed, so a store's own presigned URL
    # would hand out ciphertext). Unset: 503.
    blob_url: str = ""
    blob_endpoint: str = ""
    artifact_url_secret: str = ""
    public_url: str = ""
    artifact_url_ttl_s: int = 900
    # Knowledge search. The embedder settings carry central's names: the hub embeds queries
    # with the same model central embedded the chunks with (its name picks the index).
    embedder: str = "local"    # local or openai (knowledge.embed.make_embedder)
    embedder_url: str = ""
    embedder_model: str = ""
    embedder_api_key: str = ""
    embedder_dim: int = 0
    # The local model's threads per hub worker (0: one per core). One: a query is a few words;
    # two threads embed it sooner on an idle machine but burn 2.4 times the CPU spinning, which
    # the worker's requests, its index service and Postgres want (bench/embed_bench.py; under
    # knowledge_bench at 100k chunks, one thread took a fifth to two fifths off hybrid's p95).
    embedder_threads: Annotated[int, msgspec.Meta(ge=0)] = 1
    # How the local model computes a query: int8 (its weights as integers, 2.7x faster, vectors
    # at cosine 0.993 to central's, which ranked as well on Lee 2005) or float (central's own
    # graph, the chunks' exact vectors). knowledge/embed_local.py says both.
    embedder_compute: Compute = "int8"
    qdrant_url: str = ""          # a Qdrant server; empty = the embedded engine in this process
    # The hub's index service (regional/index_service.py): where the workers reach it, where it
    # keeps its shard (empty: in memory, loaded at every start), how many unbuilt points start
    # an HNSW build on a copy, and how many searches it takes at once (beyond: 503).
    index_url: str = ""
    index_dir: str = ""
    index_build_after: int = 5000  # as regional.vectors_edge.BUILD_POINTS
    index_searches_max: int = 64
    # How long a tokened query waits for the index; below the edge's per-hub timeout, like
    # token_wait_ms.
    index_wait_ms: int = 1000
    # How often the index service polls its replica's position and, when it moved, reads the
    # feed for changed documents. A search holding a token the index does not cover wakes both
    # at once, so what this delays is only a token-less search's view of new knowledge. At
    # least 1 ms: a nap of nothing would poll the replica in a loop.
    index_step_ms: Annotated[float, msgspec.Meta(ge=1)] = 200.0
    # Realtime (regional/realtime/): WebSocket connections per caller by tier, counted across
    # the fleet in the limits Redis (HUB_REALTIME_LIMITS is a JSON object), and per worker in
    # all; frames queued per connection before it is closed as a slow consumer (4008); seconds
    # of silence before the hub sends a ping frame.
    realtime_limits: dict[str, int] = msgspec.field(default_factory=lambda: {
        "free": 5, "pro": 50, "enterprise": 500, "internal": 10_000})
    realtime_max_connections: int = 20_000
    realtime_queue_max: int = 256
    realtime_ping_s: float = 20.0
    # Yjs providers (regional/yjs/): their connections count against realtime_limits and
    # realtime_max_connections, and queue realtime_queue_max messages. Updates one connection
    # may have waiting for central before it is closed as too fast (4008); awareness payloads
    # a worker queues for the Redis relay (the newest dropped beyond it); seconds an awareness
    # state is remembered without renewal (y-protocols' outdatedTimeout).
    yjs_pending_max: int = 256
    yjs_relay_queue_max: int = 1024
    yjs_awareness_timeout_s: float = 30.0
    # The audit trail (regional/audit.py): the key of twins' pseudonyms (central's
    # CENTRAL_AUDIT_KEY; empty: nothing is recorded), how often a worker sends its records to
    # central, how many make a batch, and how many it holds at most while central cannot take
    # them (the oldest beyond it are dropped and counted).
    audit_key: str = ""
    audit_flush_ms: int = 250
    audit_batch: int = 512
    audit_buffer_max: int = 8192
    # Personal data at rest (sealing/): the cell's key store, a directory outside the
    # database (its wrapped data keys, the local key-encryption key unless KMS holds it).
    # ``kms_key_id`` set: the key-encryption key is that AWS KMS key (``kms_endpoint`` for a
    # stand-in or a VPC endpoint). Opened keys are kept ``keys_cache_items`` at most, each
    # ``keys_ttl_s`` at most. Unset: twins' personal data answers 503.
    keys_dir: str = ""
    kms_key_id: str = ""
    kms_endpoint: str = ""
    kms_region: str = ""
    keys_cache_items: int = 10_000
    keys_ttl_s: float = 300.0
    # The cold tier of events (regional/reads/archive.py): a listing before the hot window
    # reads the archive's Parquet files from the blob store above. Files of a store other than
    # a directory (S3) are kept in ``archive_cache_dir`` ("": <temp dir>/memorybank-archive),
    # at most ``archive_cache_bytes`` (least recently used evicted); a page reads at most
    # ``archive_days_per_page`` archived days; DuckDB scans them, at most ``archive_scans`` at
    # a time per worker, each in at most ``archive_memory_mb``.
    archive_cache_dir: str = ""
    archive_cache_bytes: int = 1 << 30
    archive_days_per_page: AtLeastOne = 31
    archive_memory_mb: AtLeastOne = 256
    archive_scans: AtLeastOne = 2

    @property
    def region_list(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions.split(",") if r)

    def served_cell(self) -> tuple[Cell, CellMap]:
        """This hub's cell and the fleet's map (ValueError if the cell is not in it)."""
        return served_from(self.cells, self.region_list, self.cell, "HUB_")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> HubSettings:
        """``HUB_*`` variables; on Fly.io the region defaults to ``FLY_REGION``, and a
        ``{region}`` in a URL is filled in, so one set of app-wide secrets serves every region."""
        check_known("HUB_", environ, (f"HUB_{f.upper()}" for f in cls.__struct_fields__))
        raw: dict[str, object] = {
            k.removeprefix("HUB_").lower(): v for k, v in environ.items() if k.startswith("HUB_")
        }
        for key in ("peers", "realtime_limits"):
            if isinstance(raw.get(key), str):
                raw[key] = msgspec.json.decode(str(raw[key]))
        if "region" not in raw and "FLY_REGION" in environ:
            raw["region"] = environ["FLY_REGION"]
        region = str(raw.get("region", ""))
        for key in ("replica_url", "redis_url"):
            if key in raw:
                raw[key] = str(raw[key]).replace("{region}", region)
        return msgspec.convert(raw, cls, strict=False)
