"""Cache-first reads at one PoP.

What is cached, for how long, and what a write makes stale: the action table says
(``mbwire.actions``: an action's ``cache`` rule and a write's ``invalidates``).

Keys. A key hashes the principal (sub, tier and role: one caller never reads another's answer),
method, path, query string, a hash of the body, and the *generation* of what the answer depends
on (``twin:<id>`` or ``knowledge``). The Cache API can only delete an exact key and cannot list
keys, so a write does not delete entries: it gives the scope a fresh random generation, stored in
the same cache store. Every later lookup computes a different key, and the old entries die by TTL.
A reader that started before the write still holds the old generation and stores its (possibly
pre-write) answer under the old key, where nobody looks. The generation record outlives any entry
(``generation_ttl``); if the store evicts it early, staleness is still bounded by the entry TTL.

Revocable answers. Only answers whose authorization cannot be revoked are kept: the hub marks an
answer that relied on a grant (a grantee's read) ``Cache-Control: private, no-store``, and such
an answer is never stored, so revoking a grant needs no purge at any PoP (``storable``).

Freshness. Each entry keeps the answer's ``X-Consistency-Token``. A request carrying a token newer
than the entry's in a cell the entry answered from (or an entry without one) skips the cache, so
a read-your-writes caller never gets an answer older than its own write, from any region.

Pinned cells (``Cell.pinned``) are never cached here at all: the pipeline does no lookup, no
store and asks no fleet lease for them.

Sealed. The Worker's Cache API keeps entries on the PoP's disks; an entry is a twin's answer, so
it is stored sealed (AES-256-GCM under a key derived from the edge's hop secret, the entry's
cache key bound as associated data: an entry copied under another key does not open, and one
that does not open is a miss). Nothing a PoP keeps on disk is a twin's data in the clear."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mbedge.messages import EdgeRequest
from mbedge.ports import CacheStore
from mbwire import Principal, Problem
from mbwire.actions import Match
from mbwire.token import Tokens


class CachedAnswer(msgspec.Struct, array_like=True, frozen=True):
    body: bytes
    content_type: str
    token: str | None


def read_scope(found: Match) -> str | None:
    """The generation scope of a cacheable read, or None when the read is not cached."""
    rule = found.action.cache
    return found.scope(rule.scope) if rule is not None else None


def write_scopes(found: Match) -> tuple[str, ...]:
    """What a write through this PoP makes stale here."""
    return tuple(found.scope(template) for template in found.action.invalidates)


def storable(cache_control: str | None) -> bool:
    """Whether a hub's answer may be kept. Not when it says ``no-store``: the hub marks so every
    answer that relied on a grant, which its owner may revoke at any moment (``private`` alone
    is fine: every entry here is per principal already)."""
    return "no-store" not in (cache_control or "").lower()


def covers(entry_token: str | None, wanted: str | None) -> bool:
    """True when an answer as of ``entry_token`` satisfies a read that wants ``wanted``."""
    if wanted is None:
        return True
    if entry_token is None:
        return False
    try:
        return Tokens.parse(entry_token).answers(Tokens.parse(wanted))
    except Problem:
        # An unparsable token goes to the hub, which answers 400 with the contract's words.
        return False


class PopCache:
    def __init__(self, store: CacheStore, *, ttl_s: float, secret: bytes) -> None:
        self._store = store
        self._ttl = ttl_s
        self._generation_ttl = max(60.0, 10 * ttl_s)
        self._aead = AESGCM(hmac.new(secret, b"mb-edge-cache-v1", hashlib.sha256).digest())

    async def key(self, scope: str, principal: Principal, req: EdgeRequest) -> str:
        generation = await self._store.get(f"gen:{scope}") or b"0"
        h = hashlib.sha256()
        for part in (
            b"mb-edge-cache-v1", principal.sub.encode(), principal.tier.encode(),
            principal.role.encode(), req.method.encode(), req.path.encode(), req.query.encode(),
            hashlib.sha256(req.body).digest(), scope.encode(), generation,
        ):
            # Length-prefixed, so no two different tuples hash the same input.
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return f"answer:{h.hexdigest()}"

    async def get(self, key: str) -> CachedAnswer | None:
        raw = await self._store.get(key)
        if raw is None or len(raw) < 28:
            return None
        try:
            opened = self._aead.decrypt(raw[:12], raw[12:], key.encode())
            return msgspec.msgpack.decode(opened, type=CachedAnswer)
        except (InvalidTag, msgspec.DecodeError):
            return None

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float | None = None) -> None:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, msgspec.msgpack.encode(answer), key.encode())
        await self._store.put(key, sealed, ttl_s or self._ttl)

    async def invalidate(self, scope: str) -> None:
        await self._store.put(
            f"gen:{scope}", secrets.token_hex(8).encode(), self._generation_ttl
        )


class MemoryCache:
    """The local PoP's cache store: TTL entries in least-recently-used order, bounded in count
    (the Cache API evicts under pressure too, so callers already cope with early misses)."""

    def __init__(self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
