"""Where a record lives: which central shard writes a twin.

Central runs as several writer processes ("shards"), each the home of a disjoint set of twins:
``central_shard(twin_id, shards)``, a stable hash (CRC-32 of the id's UTF-8 bytes) modulo the
shard count, the same in every hub and every release. Ownership is affinity, not correctness:
a shard keeps the twins it owns resident, and any shard may write any twin (the stored version
decides, central/twins.py), so a write that reaches the wrong shard, during a resize or while its
owner is down, is slower, never wrong. Per-twin data residency will look a twin's home up here."""

from __future__ import annotations

import zlib

TWIN_PATH = "/v1/twins/"


def central_shard(twin_id: str, shards: int) -> int:
    return zlib.crc32(twin_id.encode()) % shards if shards > 1 else 0


def twin_of_path(path: str) -> str | None:
    """The twin a ``/v1/twins/{id}/...`` path names (decoded), else None."""
    if not path.startswith(TWIN_PATH):
        return None
    twin_id = path[len(TWIN_PATH):].partition("/")[0]
    return twin_id or None
