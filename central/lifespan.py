"""Central's lifespan: what happens between "the process started" and "it takes traffic", the
housekeeping loops that run while it serves, and the orderly shutdown in reverse.

    start: embedders (model checked; the memories' own on one thread) → migrations → store's
           pool → twin compactor (adopts the logs a stopped process left) → feed sequencer →
           memory embedder (its own twins' text events' vectors) → popular ranker (after its
           changes, and once at start) → [shard 0: feed pruner,
           today's event partition, partition loop (partitions made, archived to the cold
           tier, dropped), audit chainer]
    stop:  loops cancelled → due compactions (≤ 5 s) → events' committer → twins' committer
           → store → embedder

One shard keeps house (``shard == 0``), so the others never race it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from litestar import Litestar

from blobs import open_store
from central import partitions
from central.archive import EventArchive
from central.migrate import apply_migrations
from central.replay import prune as prune_write_keys
from central.settings import CentralSettings
from central.wiring import Parts
from knowledge.embed import close_embedder, open_embedder
from mbwire import Unavailable
from mbwire.placement import central_shard

log = logging.getLogger("memorybank.central")


@asynccontextmanager
async def run_central(parts: Parts, app: Litestar) -> AsyncIterator[None]:
    """Open everything central needs before its first request and close it in reverse after the
    last; the embedder is outermost, so it is closed even when migrations or the pool fail."""
    settings, store = parts.settings, parts.store
    # Loaded (the model's sha256 checked) or its dimension checked before taking traffic: a
    # bad embedder stops central at start, not at its first ingest.
    app.state.embedder = await open_embedder(
        settings.embedder, url=settings.embedder_url, model=settings.embedder_model,
        api_key=settings.embedder_api_key, dim=settings.embedder_dim,
    )
    app.state.max_doc_chunks = settings.max_doc_chunks
    try:
        # Memories' vectors in the background (central/memories.py): the local model on a
        # thread of its own, so it never takes more than its share of one core from the writes.
        parts.memories.embedder = (await open_embedder(
            settings.embedder, url=settings.embedder_url, model=settings.embedder_model,
            api_key=settings.embedder_api_key, dim=settings.embedder_dim, threads=1)
            if settings.embedder == "local" else app.state.embedder)
        await apply_migrations(settings.database_url)
        await store.open()
        # Every shard compacts the logs of the twins it wrote (central/twins.py), and at start
        # those of its home twins that a stopped process left behind.
        await parts.compactor.adopt(
            lambda twin: central_shard(twin, settings.shards) == settings.shard)
        chores: list[asyncio.Task[None]] = [
            asyncio.create_task(parts.compactor.run(), name="twin-compactor"),
            # Every shard numbers feed rows (one tick at a time), so no shard's loss stops it.
            asyncio.create_task(parts.sequencer.run(), name="feed-sequencer"),
            # Every shard embeds its own twins' text events (central/memories.py).
            asyncio.create_task(parts.memories.run(), name="memory-embedder"),
            # Every shard ranks popular items after its own changes (central/popular.py).
            asyncio.create_task(parts.popular.run(), name="popular-ranker")]
        if settings.shard == 0:  # one shard keeps house, so the others never race it
            chores.append(asyncio.create_task(prune_forever(parts), name="feed-pruner"))
            archive = event_archive(settings)
            await maintain_partitions(parts, archive)  # before traffic: today's partition exists
            chores.append(asyncio.create_task(partitions_forever(parts, archive),
                                              name="event-partitions"))
            # One chain per cell: what every shard took from the hubs, in one order.
            chores.append(asyncio.create_task(parts.chainer.run(), name="audit-chainer"))
        try:
            yield
        finally:
            for chore in chores:
                chore.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chore
            # What is still due is folded now: a clean stop leaves short logs behind.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(parts.compactor.compact_due(everything=True), 5)
            await parts.committer.close()
            await parts.twin_committer.close()
            await store.close()
    finally:
        await close_embedder(app.state.embedder)
        background = parts.memories.embedder
        if background is not None and background is not app.state.embedder:
            await close_embedder(background)


async def prune_forever(parts: Parts) -> None:
    """Drop change-feed rows and idempotency keys past their retention, every ``prune_every_s``;
    a database that is away skips a round rather than ending the loop."""
    settings, store = parts.settings, parts.store
    while True:
        await asyncio.sleep(settings.prune_every_s)
        try:
            pruned = await store.prune_feed(settings.feed_retention_s)
            async with store.write() as tx:
                keys = await prune_write_keys(tx, settings.write_key_retention_h)
        except Unavailable as exc:
            log.warning("feed prune skipped: %s", exc)
            continue
        if pruned:
            log.info("pruned %d feed rows", pruned)
        if keys:
            log.info("pruned %d write keys", keys)


def event_archive(settings: CentralSettings) -> EventArchive | None:
    """The cold tier in the cell's blob store; None without one (old partitions are kept)."""
    if not settings.blob_url:
        return None
    return EventArchive(open_store(settings.blob_url, endpoint=settings.blob_endpoint),
                        tmp_dir=settings.event_archive_tmp_dir,
                        memory_mb=settings.event_archive_memory_mb)


async def maintain_partitions(parts: Parts, archive: EventArchive | None) -> None:
    """Create the event partitions ahead, archive and drop the expired ones; a failure only
    logs, since the default partition catches events meanwhile and an expired partition that
    was not archived stays."""
    settings = parts.settings
    try:
        async with parts.store.pool.connection(timeout=10) as conn:
            await partitions.maintain(
                conn, ahead_days=settings.event_partitions_ahead_days,
                retention_days=settings.event_retention_days, archive=archive)
    except (psycopg.Error, TimeoutError) as exc:  # the default partition catches events
        log.warning("event partitions skipped: %s", exc)


async def partitions_forever(parts: Parts, archive: EventArchive | None) -> None:
    """``maintain_partitions`` every ``event_maintain_every_s``, for as long as central runs."""
    while True:
        await asyncio.sleep(parts.settings.event_maintain_every_s)
        await maintain_partitions(parts, archive)
