"""Twin views in this worker's own memory, in front of the hub's Redis cache.

A cached read used to cost a Redis round trip; the near cache answers it from a dict. It is kept
honest by the worker's own change-feed tail (``regional.realtime.feed``, which every worker runs
for its sockets), with one rule instead of Redis's ``inv:`` marks, since one event loop owns it:

- ``mark``: a replay position up to which the tail has evicted every changed twin (read before
  the rows it evicted, as the Redis follower's mark is). 0 until the tail has handed on its
  first complete batch (nothing is served or kept before that).
- ``put`` keeps a view read at position P only if P >= ``mark`` *at that moment* (no await
  between the check and the store): every change after P reaches ``evict`` later and drops it.
  A view read before the mark could lack a change whose eviction already ran; it is not kept.
- ``get`` answers at max(P, ``mark``): nothing changed the twin between P and the mark, or the
  view would be gone. A read whose token is past that goes on to Redis and the replica.

Bounded by bytes (``HUB_NEAR_CACHE_BYTES``, 64 MiB a worker), least recently used first. A view
is counted as what its decoded objects take (``cost``: its msgpack encoding, what Redis holds
for it, times ``DECODED_FACTOR``, measured with tracemalloc: 2.4-2.5x for profiles of 1, 10 and
50 KB, plus a fixed overhead), once when kept, so the bound is about the memory the views hold,
not a budget of encoded bytes. A view over an eighth of the bound is not kept (one huge profile
would flush everyone else's). The views stay decoded, not encoded answers: every read of them
(the profile, its grants, the ``fields`` selection, ``authorize``) takes the decoded view, and a
hit stays a dict lookup (an encoded answer would be decoded per hit). A worker's memory, so per
twin data residency later means: a hub outside a twin's zone never reads it, so never keeps it.
Views are kept opened, unlike Redis's sealed entries: this is a process's memory, not data at
rest, and an erased twin's view goes with its feed row."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import msgspec

from mbhttp import metrics
from mbwire import ConsistencyToken
from regional.cache import VIEW_KINDS, CachedTwin

ENTRY_OVERHEAD = 200  # bytes a kept view costs beyond its objects: key, tuple, dict slot
DECODED_FACTOR = 2.5  # a decoded view's objects over its msgpack encoding (measured, see above)
_measure = msgspec.msgpack.Encoder().encode


def cost(view: CachedTwin) -> int:
    """The bytes a kept view counts for against the bound."""
    return int(len(_measure(view)) * DECODED_FACTOR) + ENTRY_OVERHEAD


class NearCache:
    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.used = 0  # bytes counted for the views kept
        self.mark = 0
        self._views: OrderedDict[str, tuple[CachedTwin, int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._views)

    def get(self, twin_id: str, token: ConsistencyToken | None,
            ) -> tuple[CachedTwin, ConsistencyToken] | None:
        found = self._views.get(twin_id) if self.mark else None
        if found is None:
            return None
        answered = max(found[1], self.mark)
        if token is not None and token.lsn > answered:
            return None
        self._views.move_to_end(twin_id)
        metrics.near_hit.inc()
        return found[0], ConsistencyToken(answered)

    def put(self, twin_id: str, view: CachedTwin, position: ConsistencyToken) -> bool:
        if not self.max_bytes or not self.mark or position.lsn < self.mark:
            return False
        self._drop(twin_id)
        size = cost(view)
        if size > self.max_bytes // 8:
            return False
        views = self._views
        while self.used + size > self.max_bytes:
            self.used -= views.popitem(last=False)[1][2]
        views[twin_id] = (view, position.lsn, size)
        self.used += size
        return True

    def _drop(self, twin_id: str) -> None:
        found = self._views.pop(twin_id, None)
        if found is not None:
            self.used -= found[2]

    def evict(self, changes: Iterable[tuple[str, str]], upto: ConsistencyToken | None) -> None:
        """The tail read ``changes`` ((kind, key) pairs); ``upto``, when known: a position read
        before them, so every change committed at or before it is among them or earlier ones
        (not a position read after them: a change committed in between is not among them)."""
        for kind, key in changes:
            if kind in VIEW_KINDS:
                self._drop(key)
        if upto is not None:
            self.mark = max(self.mark, upto.lsn)

    def clear(self) -> None:
        """The tail starts over (it may have missed changes): nothing kept is trusted."""
        self._views.clear()
        self.used = self.mark = 0
