"""Session consistency at one PoP: read-your-writes and monotonic reads without client tokens.

The PoP remembers, per principal (sub, tier and role: the same key the cache uses), the greatest
``X-Consistency-Token`` it has sent back to them, from any response: a write's, a read's, a
cache hit's. That token is the principal's *floor*. A later read through this PoP is sent on
with ``max(caller's token, floor)``: a caller's explicit token wins when it is greater (it may
come from a write through another PoP), and is raised to the floor when it is smaller, since
going back below what this caller has already seen would break monotonic reads. Cached answers
older than the floor are skipped like those older than a caller's token (``cache.covers``).

A floor never decreases (``SessionStore.raise_to``), and forgetting one is safe: the store only
bounds memory (LRU, TTL), and a forgotten floor weakens the guarantee back to what a caller
without tokens had before, never to a wrong answer. A floor that is too old costs nothing: the
replica has replayed it long ago."""

from __future__ import annotations

import functools
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from mbwire import ConsistencyToken, Principal, Problem

# Long enough to outlive any replica lag by far; only a memory bound.
SESSION_TTL_S = 600.0


class SessionStore(Protocol):
    """Per-principal floors. Never raises: a store that fails knows nothing (get) or forgets
    (raise_to), which only weakens the guarantee to what tokenless callers had before."""

    async def get(self, key: str) -> ConsistencyToken | None: ...

    async def raise_to(self, key: str, token: ConsistencyToken) -> None:
        """Stores ``token`` unless the key already holds a greater one."""
        ...


class MemorySessions:
    """Floors in process memory: least-recently-used order, bounded in count, TTL per entry.
    Raising is atomic (no await between read and write), so concurrent requests never lower it."""

    def __init__(
        self, *, max_entries: int = 100_000, ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, ConsistencyToken]] = OrderedDict()
        self._max, self._ttl, self._clock = max_entries, ttl_s, clock

    async def get(self, key: str) -> ConsistencyToken | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            del self._entries[key]
            return None
        return found[1]

    async def raise_to(self, key: str, token: ConsistencyToken) -> None:
        held = await self.get(key)
        self._entries[key] = (self._clock() + self._ttl, max(token, held or token))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


# Two lookups per read (floor, remember) for the same few callers: remembered per principal.
@functools.lru_cache(maxsize=4096)
def session_key(principal: Principal) -> str:
    digest = hashlib.sha256()
    for part in (b"mb-edge-session-v1", principal.sub.encode(), principal.tier.encode(),
                 principal.role.encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return f"session:{digest.hexdigest()}"


class Sessions:
    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def floor(self, principal: Principal) -> ConsistencyToken | None:
        return await self._store.get(session_key(principal))

    async def remember(self, principal: Principal, answered: str | None) -> None:
        """Raises the principal's floor to the token of a response this PoP is sending them."""
        if not answered:
            return
        try:
            token = ConsistencyToken.parse(answered)
        except Problem:
            return  # not a token a hub issued: nothing to remember
        await self._store.raise_to(session_key(principal), token)


def wanted_token(sent: str | None, floor: ConsistencyToken | None) -> str | None:
    """The token a read goes on with: the greater of the caller's and the floor. A caller's
    token that does not parse is kept as sent, so the hub answers it with its 400."""
    if floor is None or not sent:
        return sent or (str(floor) if floor is not None else None)
    try:
        return sent if ConsistencyToken.parse(sent) >= floor else str(floor)
    except Problem:
        return sent
