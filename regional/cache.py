"""The hub's Redis cache of twin views, kept honest by the change-feed follower.

Three rules make a cached answer safe to serve under a consistency token:
- The follower, for each change it reads from the replica at replay position M, first sets
  ``inv:<twin>`` to M and then deletes the entry.
- A reader fills the cache only through FILL, which refuses when ``inv:<twin>`` is newer than
  the replay position its own read reflects; so a slow reader can never put back a view the
  follower already invalidated.
- ``feed:mark`` is the replay position the follower has fully processed; an entry may answer a
  read whose token is at most the mark, and the answer's token is the mark.
Entries live under an epoch; bumping it (when the follower cannot resume its cursor) drops them all.
Positions are ``ConsistencyToken`` strings (fixed width), so Lua compares them as strings.

``mb:cache:floor`` marks a Redis whose state the follower set up: the replay position at which it
last started fresh (cursor at the feed's head), so no change at or before it will ever be
invalidated one by one. FILL refuses while the floor is missing (Redis restarted empty: no cursor,
no ``inv:`` marks, nothing filled is safe until the follower starts over) and for a read older
than the floor; GET misses while it is missing. Every worker reads the epoch inside the script,
never from its own memory, so a worker that does not run the follower uses the current epoch.

Entries are sealed under the twin's data key (``sealing``, field ``view``): Redis holds no
profile in plaintext, in memory or in any snapshot or AOF it might be made to write. An entry
that does not open (its twin's key is gone: erased) reads as a miss. Ids, positions and marks
stay plaintext: the scripts compare them.

Memory: each Redis runs with ``maxmemory`` and ``noeviction`` (``devstack.redis``). No eviction
policy could spare what correctness needs: entries expire (``ttl_s``), but so do ``inv:`` marks,
the follower's lease and the limiter's windows (a ``volatile-*`` policy would evict those too),
and the cursor, mark, floor and epoch do not (an ``allkeys-*`` policy would evict those). At the
bound Redis refuses writes that grow memory instead, and each writer already takes a failed
write as Redis being away: a FILL is not made (the read is served from the replica), the limiter
fails open behind its breaker, and the follower's ``invalidate`` is one script whose first write
decides (``_INVALIDATE``), so a refusal applies none of it (not an entry deleted and the mark
moved past an unwritten ``inv:`` mark), the follower then deletes the changed twins' entries
alone (DEL is allowed at the bound, and no FILL can land while Redis refuses writes) and retries
the rest. Memory comes back as entries expire. ``inv:`` marks are bounded by the twins changed
within ``INV_TTL_S``."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError, RedisError

from mbhttp import metrics
from mbwire import ConsistencyToken
from regional.replica.twins import key_of
from sealing import Keyring, SealError

# Entry keys are built in the scripts from the epoch they read (one Redis per hub, not a cluster).
_FILL = """
local floor = redis.call('GET', 'mb:cache:floor')
local epoch = redis.call('GET', 'mb:cache:epoch')
if not floor or not epoch or floor > ARGV[1] then return 0 end
local inv = redis.call('GET', KEYS[1])
if inv and inv > ARGV[1] then return 0 end
redis.call('SET', 'mb:twin:' .. epoch .. ':' .. ARGV[4], ARGV[2], 'EX', ARGV[3])
return 1
"""
_GET = """
local epoch = redis.call('GET', 'mb:cache:epoch')
if not epoch or not redis.call('GET', 'mb:cache:floor') then return {false, false} end
return {redis.call('GET', 'mb:twin:' .. epoch .. ':' .. ARGV[1]), redis.call('GET', 'mb:feed:mark')}
"""
# One step of the follower, atomic: ARGV = inv, cursor, mark ('' for none), the marks' TTL, the
# epoch, then the changed twins. Its first write is refused (OOM) at Redis's bound, and then none
# of it is applied (a script that has written is never stopped halfway, so the first write
# decides); the reply says so as MULTI's would (an error starting "OOM": Redis 6 puts where the
# script failed before it). Returns whether the floor is there.
_INVALIDATE = """
local kept = redis.call('EXISTS', 'mb:cache:floor')
local first = redis.pcall('SET', 'mb:feed:cursor', ARGV[2])
if type(first) == 'table' and first.err then
  if string.find(first.err, 'OOM', 1, true) then return redis.error_reply('OOM ' .. first.err) end
  return first
end
for i = 6, #ARGV do redis.call('SET', 'mb:inv:' .. ARGV[i], ARGV[1], 'EX', ARGV[4]) end
for i = 6, #ARGV do redis.call('DEL', 'mb:twin:' .. ARGV[5] .. ':' .. ARGV[i]) end
if ARGV[3] ~= '' then redis.call('SET', 'mb:feed:mark', ARGV[3]) end
return kept
"""
# Change-feed kinds that change what a twin view holds: the follower invalidates Redis and each
# worker's feed tail evicts its near cache (regional.near) on these.
VIEW_KINDS = frozenset({"twin", "grant"})
INV_TTL_S = 600  # longer than any replica read can take (statement timeout is 10 s)


class CachedTwin(msgspec.Struct, frozen=True):
    version: int
    owner_sub: str
    profile: dict[str, Any]
    grants: dict[str, str]
    lsn: str


class TwinCache:
    """``hot``: the client for ``get`` and ``fill`` (every read), made without a socket timeout
    and bounded here by ``asyncio.timeout(timeout_s)`` instead: with a socket timeout, redis-py
    sends each command through ``asyncio.wait_for``, a task per command (see
    ``regional.app.hot_redis``). Without one, both go through ``client``."""

    def __init__(self, client: aioredis.Redis, *, ttl_s: int = 300,
                 hot: aioredis.Redis | None = None, timeout_s: float = 2.0) -> None:
        self.redis = client
        self.hot = hot or client
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self.epoch = 0
        self._fill = self.hot.register_script(_FILL)
        self._get = self.hot.register_script(_GET)
        self._invalidate = self.redis.register_script(_INVALIDATE)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(CachedTwin)

    def _key(self, twin_id: str) -> str:
        return f"mb:twin:{self.epoch}:{twin_id}"

    async def load_epoch(self) -> None:
        raw = await self.redis.get("mb:cache:epoch")
        self.epoch = int(raw or 0)

    async def get(self, twin_id: str, keys: Keyring,
                  ) -> tuple[CachedTwin | None, ConsistencyToken | None]:
        """The entry (if any, opened with ``keys``) and the follower's mark; a Redis failure
        reads as a miss."""
        try:
            async with asyncio.timeout(self.timeout_s):
                raw, mark = await self._get(keys=[], args=[twin_id])
        except (RedisError, TimeoutError):
            return None, None
        # The client is made without decode_responses, so values are bytes.
        entry = await self._open(twin_id, raw, keys) if isinstance(raw, bytes) else None
        (metrics.cache_hit if entry is not None else metrics.cache_miss).inc()
        token = ConsistencyToken.parse(mark.decode()) if isinstance(mark, bytes) else None
        return entry, token

    async def _open(self, twin_id: str, raw: bytes, keys: Keyring) -> CachedTwin | None:
        key = await key_of(keys, twin_id)
        if key is None:
            return None
        try:
            entry: CachedTwin = self._decoder.decode(key.open("view", raw))
        except (SealError, msgspec.DecodeError):  # not sealed under its key: not trusted
            return None
        return entry

    async def fill(self, twin_id: str, entry: CachedTwin, keys: Keyring) -> bool:
        key = await key_of(keys, twin_id)
        if key is None:
            return False
        sealed = key.seal("view", self._encoder.encode(entry))
        try:
            async with asyncio.timeout(self.timeout_s):
                done = await self._fill(
                    keys=[f"mb:inv:{twin_id}"], args=[entry.lsn, sealed, self.ttl_s, twin_id])
        except (RedisError, TimeoutError):
            return False
        return bool(done)

    async def invalidate(
        self, twin_ids: set[str], inv: ConsistencyToken, cursor: int,
        mark: ConsistencyToken | None,
    ) -> bool:
        """Run by the follower: ``inv`` is a replay position at or after every change's commit
        (so FILLs from reads that could have missed them are refused); ``mark``, when given,
        is a position up to which every change is now processed. False when Redis has lost the
        state the follower set up (no floor: it restarted empty); the follower then starts over."""
        # One script: a MULTI of the same commands cost the client twice the CPU (230-290 µs
        # against 115-140 in a loop: README, "Reads at scale"); all or nothing when Redis is full.
        try:
            return bool(await self._invalidate(keys=[], args=[
                str(inv), cursor, str(mark) if mark is not None else "", INV_TTL_S, self.epoch,
                *twin_ids]))
        except OutOfMemoryError:
            # Full: the entries go now (DEL is allowed at the bound, and no FILL can put them
            # back while Redis refuses writes); the marks follow when the follower retries.
            if twin_ids:
                await self.redis.delete(*(self._key(t) for t in twin_ids))
            raise

    async def cursor(self) -> int | None:
        raw = await self.redis.get("mb:feed:cursor")
        return int(raw) if raw is not None else None

    async def has_state(self) -> bool:
        """Whether the follower's state (the floor) is in Redis: gone after a restart."""
        return bool(await self.redis.exists("mb:cache:floor"))

    async def reset(
        self, cursor: int, mark: ConsistencyToken, floor: ConsistencyToken | None = None
    ) -> None:
        """Starts over at ``cursor``: a new epoch (dropping every entry), and ``floor``, a replay
        position at or after every change up to ``cursor``, below which no fill is taken (a read
        from before it may lack a change the follower will never invalidate). One transaction,
        so no fill lands between the epoch and the floor."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr("mb:cache:epoch")
        pipe.mset({"mb:feed:cursor": cursor, "mb:feed:mark": str(mark),
                   "mb:cache:floor": str(floor or mark)})
        self.epoch = int((await pipe.execute())[0])
