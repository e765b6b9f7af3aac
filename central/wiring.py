"""What central is made of, built once from its settings: the store and the two group committers
(twin writes and events) with the writer over them, the compactor of its twins' logs, the feed's
sequencer, the audit trail's chainer, the embedder of text events' vectors and the ranker of
popular items.
Gathered in one frozen ``Parts`` so the app factory, the lifespan and the dependencies all name
the same objects, and so none of them has to repeat how a setting becomes a client."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.di import Provide

from central import artifacts, events
from central.audit import Chainer
from central.group_commit import GroupCommitter
from central.memories import MemoryEmbedder
from central.popular import PopularRanker
from central.sequencer import Sequencer
from central.settings import CentralSettings
from central.store import Store, WriteTx
from central.twins import Compactor, TwinWriter
from mbwire.placement import central_shard
from sealing import Keyring


@dataclass(frozen=True, slots=True)
class Parts:
    """The objects central holds for the life of the process (opened and closed by the lifespan)."""

    settings: CentralSettings
    store: Store
    twin_committer: GroupCommitter[WriteTx]
    writer: TwinWriter
    compactor: Compactor
    committer: GroupCommitter[WriteTx]
    sequencer: Sequencer  # run by every shard, one tick at a time (central/sequencer.py)
    chainer: Chainer  # run by shard 0 only (central/lifespan.py)
    keyring: Keyring  # the twins' data keys: seals what is written (sealing/)
    memories: MemoryEmbedder  # text events' vectors, off log_event's acknowledgement
    popular: PopularRanker  # popular agents and knowledge, ranked after changes


def build_parts(settings: CentralSettings) -> Parts:
    """The store, then the twins' committer and writer, then the events' committer: constructed
    only (no I/O), so a bad setting fails here and the lifespan opens them in order."""
    store = Store(settings.database_url, pool_timeout_s=settings.pool_timeout_ms / 1000)
    keyring = Keyring.from_settings(settings)
    twin_committer = events.committer(store, window_s=settings.twin_commit_window_ms / 1000,
                                      max_items=settings.twin_commit_max,
                                      depth=settings.twin_commit_depth)
    writer = TwinWriter(store, keyring=keyring, resident_bytes=settings.resident_bytes,
                        committer=twin_committer, max_twin_bytes=settings.twin_max_bytes,
                        max_log=settings.max_log, audit_key=settings.audit_key.encode())
    compactor = Compactor(writer, after=settings.compact_after, idle_s=settings.compact_idle_s,
                          idle_min=settings.compact_idle_min)
    committer = events.committer(store, window_s=settings.event_commit_window_ms / 1000,
                                 max_items=settings.event_commit_max)
    sequencer = Sequencer(store)
    return Parts(settings=settings, store=store, twin_committer=twin_committer, writer=writer,
                 compactor=compactor, committer=committer, sequencer=sequencer,
                 chainer=Chainer.configure(settings, store), keyring=keyring,
                 memories=MemoryEmbedder(store, keyring, lambda twin: central_shard(
                     twin, settings.shards) == settings.shard,
                     share=settings.memory_embed_share),
                 popular=PopularRanker(store, sequencer))


def dependencies(parts: Parts) -> dict[str, Provide]:
    """What handlers may ask for by name: the parts above and the artifact blob store."""
    return {
        "store": Provide(lambda: parts.store, sync_to_thread=False),
        "writer": Provide(lambda: parts.writer, sync_to_thread=False),
        "settings": Provide(lambda: parts.settings, sync_to_thread=False),
        "events": Provide(lambda: parts.committer, sync_to_thread=False),
        "sequencer": Provide(lambda: parts.sequencer, sync_to_thread=False),
        "keyring": Provide(lambda: parts.keyring, sync_to_thread=False),
        "memories": Provide(lambda: parts.memories, sync_to_thread=False),
        "popular": Provide(lambda: parts.popular, sync_to_thread=False),
        **artifacts.dependencies(parts.settings),
    }
