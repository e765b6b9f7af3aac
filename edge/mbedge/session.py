"""Session consistency at one PoP: read-your-writes and monotonic reads without client tokens.

The PoP remembers, per principal (sub, tier and role: the same key the cache uses), the greatest
position per cell (``mbwire.Tokens``) of every ``X-Consistency-Token`` it has sent back to them,
from any response: a write's, a read's, a cache hit's. Those positions are the principal's
*floor*. A later read through this PoP is sent on with the merge of the caller's token and the
floor (the greater position in every cell either names): a caller's explicit token wins where it
is greater (it may come from a write through another PoP), and is raised to the floor where it
is smaller, since going back below what this caller has already seen would break monotonic
reads. Cached answers older than the floor are skipped like those older than a caller's token
(``cache.covers``). A session that only ever saw the home cell has a one-part floor, printed as
the single-cell token it always was.

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

from mbwire import Principal, Problem
from mbwire.token import Tokens

# Long enough to outlive any replica lag by far; only a memory bound.
SESSION_TTL_S = 600.0


class SessionStore(Protocol):
    """Per-principal floors. Never raises: a store that fails knows nothing (get) or forgets
    (raise_to), which only weakens the guarantee to what tokenless callers had before."""

    async def get(self, key: str) -> Tokens | None: ...

    async def raise_to(self, key: str, tokens: Tokens) -> None:
        """Stores the merge of ``tokens`` and what the key holds (greatest per cell)."""
        ...


class MemorySessions:
    """Floors in process memory: least-recently-used order, bounded in count, TTL per entry.
    Raising is atomic (no await between read and write), so concurrent requests never lower it."""

    def __init__(
        self, *, max_entries: int = 100_000, ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, Tokens]] = OrderedDict()
        self._max, self._ttl, self._clock = max_entries, ttl_s, clock

    async def get(self, key: str) -> Tokens | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            del self._entries[key]
            return None
        return found[1]

    async def raise_to(self, key: str, tokens: Tokens) -> None:
        held = await self.get(key)
        self._entries[key] = (self._clock() + self._ttl, tokens.merge(held))
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

    async def floor(self, principal: Principal) -> Tokens | None:
        return await self._store.get(session_key(principal))

    async def remember(self, principal: Principal, answered: str | None) -> None:
        """Raises the principal's floor to the token of a response this PoP is sending them."""
        tokens = Tokens.maybe(answered)  # None: not a token a hub issued, nothing to remember
        if tokens:
            await self._store.raise_to(session_key(principal), tokens)


def wanted_token(sent: str | None, floor: Tokens | None) -> str | None:
    """The token a read goes on with: the merge of the caller's and the floor; the caller's as
    sent when it already covers the floor. A caller's token that does not parse is kept as
    sent, so the hub answers it with its 400."""
    if not floor or not sent:
        return sent or (str(floor) if floor else None)
    try:
        tokens = Tokens.parse(sent)
    except Problem:
        return sent
    return sent if tokens.covers(floor) else str(tokens.merge(floor))
