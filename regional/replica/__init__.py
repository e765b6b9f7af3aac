"""The region's streaming replica: reads, and the replay clock that says how far it has come.

Four modules, one job each: ``pool`` (connections, snapshots, the replay position read on a
connection), ``clock`` (``ReplayClock``: polls the replay position, waits for a caller's token),
``twins`` (twin rows, opened with the pool's keyring ``ReplicaPool.keys``: ``twin_on``,
``Replica.twin``, ``Replica.twin_state``; who may do what, nothing to open: ``twin_access_on``)
and ``feed`` (the change feed: ``Replica.feed_since``, ``Replica.feed_head``). ``Replica`` is the
pool with both kinds of reads. Driver errors are translated here; handlers never see psycopg."""

from __future__ import annotations

from regional.replica.clock import ASK_AFTER_S, SILENT_S, ReplayClock
from regional.replica.feed import FeedReads
from regional.replica.pool import POSITION_SQL, ReplicaPool
from regional.replica.twins import TwinAccess, TwinRow, TwinRowReads, twin_access_on, twin_on

__all__ = [
    "ASK_AFTER_S", "POSITION_SQL", "SILENT_S", "ReplayClock", "Replica", "ReplicaPool",
    "TwinAccess", "TwinRow", "twin_access_on", "twin_on",
]


class Replica(TwinRowReads, FeedReads):
    """The replica's pool (``ReplicaPool``) with its twin reads and its change-feed reads."""
