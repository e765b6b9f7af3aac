"""Central's settings: one frozen Struct, read from ``CENTRAL_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from mbwire.cells import Cell, CellMap, served_from
from mbwire.envcheck import check_known


class CentralSettings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    hop_secret: str
    primary_region: str = "ams"
    regions: str = "ams,iad,sin"
    # The cell this writer serves, and the fleet's catalog (JSON list of {"name", "zone",
    # "regions"}, mbwire.cells); empty: the single home cell. A writer only ever holds its
    # cell's data: the database above is that cell's primary.
    cell: str = "g1"
    cells: str = ""
    # Twins (central/twins.py). Resident documents are bounded by the memory they hold
    # (encoded size x crdt.MEMORY_PER_ENCODED_BYTE, 24 measured): 256 MiB keeps ~190 twins of the
    # seed's 50 KB, or ~10k of 1 KB, per shard; a 1 GB machine keeps a quarter of itself for them.
    resident_bytes: int = 256 << 20
    # A twin's stored state (Yjs V1 encoding) may not pass this: 5x the seed's 50 KB twin, and
    # small enough that a cold load (decode + render) stays ~10 ms. Past it a write is a 413.
    twin_max_bytes: int = 256 << 10
    # A twin's log is compacted (folded into the state) once it holds compact_after updates, or
    # has been quiet compact_idle_s holding compact_idle_min; a write that finds max_log updates
    # compacts inline. A compaction rewrites state and profile (~130-190 KB of WAL at 50 KB), so
    # 128 appends (~1.6 KB each) carry one at ~1-1.5 KB each: a patch stays under 4 KB of WAL.
    compact_after: int = 128
    compact_idle_s: float = 10.0
    compact_idle_min: int = 64
    max_log: int = 512
    # This process's place among central's shards (wire/mbwire/placement.py): hubs send each
    # twin's writes to its home shard. Shard 0 also runs the housekeeping (feed and write-key
    # pruning, event partitions).
    shard: int = 0
    shards: int = 1
    max_body_bytes: int = 1 << 20
    feed_retention_s: int = 7 * 24 * 3600   # how far back a reconnecting consumer can resume
    prune_every_s: float = 300.0
    # Which embedder vectors every chunk, once, at ingest (knowledge.embed.make_embedder):
    # "local" is the offline default; otherwise an OpenAI-compatible /embeddings endpoint.
    # The hubs carry the same five (HUB_EMBEDDER*): a query must be embedded by the same model.
    embedder: str = "local"
    embedder_url: str = ""      # "" / 0: unset (the local embedder needs none of them)
    embedder_model: str = ""
    embedder_api_key: str = ""
    embedder_dim: int = 0
    # While the primary is down or being replaced, a write waits this long for a pool
    # connection, then answers 503 + Retry-After (the client retries, keyed); far below the
    # hub's timeout for central, so it never turns into a 504 "outcome unknown".
    pool_timeout_ms: int = 1000
    # /healthz runs a cheap query on the primary within this, else answers 503.
    health_timeout_ms: int = 1000
    max_doc_chunks: int = 128   # chunks one ingest embeds (central/knowledge.py says why)
    # Text events' vectors (central/memories.py) are embedded after the 202 in this process, by
    # the model on one thread, busy at most this share of the time: a burst of memories
    # lengthens the queue (chunks waiting, in Postgres), never the writes' CPU beyond half a
    # core. 1: no rest between batches.
    memory_embed_share: float = 0.5
    # Artifacts (blobs/, central/artifacts.py): where the bytes go (a directory, or
    # s3://bucket/prefix with an S3-compatible endpoint for R2 or MinIO; AWS_* credentials),
    # the secret central and the hubs sign artifact URLs with (HUB_ARTIFACT_URL_SECRET too), the
    # public edge those URLs point at, and how long they last. Unset: artifacts answer 503.
    blob_url: str = ""
    blob_endpoint: str = ""
    artifact_url_secret: str = ""
    public_url: str = ""
    artifact_url_ttl_s: int = 900
    # Events (central/events.py, central/partitions.py): the group commit's window and largest
    # group (batches per transaction); daily partitions made this many days ahead; partitions
    # older than the retention dropped whole, checked every ``event_maintain_every_s``.
    event_commit_window_ms: float = 2.0
    event_commit_max: int = 64
    event_partitions_ahead_days: int = 7
    event_retention_days: int = 30
    event_maintain_every_s: float = 3600.0
    # The cold tier (central/archive.py): a partition past the retention is exported to Parquet
    # in the blob store above (``blob_url``; unset: partitions past the retention are kept, not
    # dropped), checked, then dropped. Work files (a day's rows as CSV, then as Parquet) go
    # under ``event_archive_tmp_dir`` ("": the system's temp dir); DuckDB, which writes and
    # rewrites the files, holds at most ``event_archive_memory_mb`` and spills past it.
    event_archive_tmp_dir: str = ""
    event_archive_memory_mb: int = 512
    # Twin merges and creates (central/twins.py): their own group commit's window, size, and how
    # many groups may wait for their commit at once (central/group_commit.py: while one waits for
    # the standby, the next runs; each holds a pool connection).
    twin_commit_window_ms: float = 1.0
    twin_commit_max: int = 64
    twin_commit_depth: int = 4
    # Stored answers of keyed writes (central/replay.py) are kept this long, pruned with the
    # feed: a retry under a key older than this is a new write.
    write_key_retention_h: float = 24.0
    # Twin merges (PATCH /v1/twins/{id}, POST .../updates) answered before Litestar routes them
    # (central/fastpath.py), by the same rules and parts; false sends them through Litestar.
    fast_writes: bool = True
    # The audit trail (central/audit.py). The intake chains each batch a hub sends at once;
    # every ``audit_chain_ms`` shard 0 drains rows an older central left pending (a pass takes
    # at most 2,048, passes follow each other until none is left) and checkpoints. A checkpoint
    # of the chain's head, signed with ``audit_key`` (the hubs' HUB_AUDIT_KEY, which also makes
    # twins' pseudonyms; empty: no checkpoints, said once in the log), goes to the blob store
    # each time the head passes a multiple of ``audit_checkpoint_every``, and at least every
    # 10 s while records arrive.
    audit_key: str = ""
    audit_chain_ms: int = 500
    audit_checkpoint_every: int = 256
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

    def __post_init__(self) -> None:
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"CENTRAL_SHARD must be in 0..{self.shards - 1}")
        if self.audit_chain_ms < 1 or self.audit_checkpoint_every < 1:
            raise ValueError("CENTRAL_AUDIT_CHAIN_MS and CENTRAL_AUDIT_CHECKPOINT_EVERY must be "
                             "at least 1")

    @property
    def region_list(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions.split(",") if r)

    def served_cell(self) -> tuple[Cell, CellMap]:
        """This writer's cell and the fleet's map (ValueError if the cell is not in it)."""
        return served_from(self.cells, self.region_list, self.cell, "CENTRAL_")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> CentralSettings:
        check_known("CENTRAL_", environ, (f"CENTRAL_{f.upper()}" for f in cls.__struct_fields__))
        raw = {
            k.removeprefix("CENTRAL_").lower(): v
            for k, v in environ.items() if k.startswith("CENTRAL_")
        }
        return msgspec.convert(raw, cls, strict=False)
