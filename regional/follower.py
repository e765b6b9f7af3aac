"""The change-feed follower: reads ``change_feed`` from this region's replica (so it never hears
of a change before the replica can show it) and invalidates the Redis cache. Later consumers
hang off ``listeners`` (realtime does not: it runs in every hub worker, this in one, so each
worker tails the feed itself, ``regional/realtime/feed.py``).

The feed's ``seq`` is drawn after commit, in the order rows became visible (central/sequencer.py),
so "seq > cursor" misses nothing; rows committed but not numbered yet are invalidated too
(``FeedStep.pending``), so the mark never waits for the sequencer. The cursor lives in Redis
beside the cache it protects: a restarted hub resumes where it stopped; if the feed no longer
holds that far back, or Redis lost its state (restarted empty: its floor key is gone,
regional/cache.py), the follower starts over at the feed's head under a new epoch and a floor
that refuses fills from reads older than that head."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from mbwire import ConsistencyToken, Unavailable
from regional.cache import VIEW_KINDS, TwinCache
from regional.replica import ReplayClock, Replica

log = logging.getLogger("memorybank.follower")

Change = tuple[int, str, str]  # (seq, kind, key)
Listener = Callable[[list[Change], ConsistencyToken], Awaitable[None]]


class LostState(Exception):
    """The hub's Redis no longer holds what the follower set up in it."""


class Follower:
    def __init__(self, replica: Replica, clock: ReplayClock, cache: TwinCache) -> None:
        self.replica, self.clock, self.cache = replica, clock, cache
        self.cursor = 0
        self.mark = ConsistencyToken(0)
        self.listeners: list[Listener] = []
        self.batch = 1000

    async def _start(self) -> None:
        await self.cache.load_epoch()
        low, high, at = await self.replica.feed_head_at()
        saved = await self.cache.cursor()
        # No floor: Redis restarted empty (or predates it). A cursor alone is not enough: the
        # follower may have written it again since the restart, after entries were lost.
        if (saved is None or not await self.cache.has_state() or (low and saved < low - 1)
                or saved > high):
            self.cursor = high
            # Mark 0: until the follower has processed a step, no token is served from cache.
            # Floor ``at``: changes up to ``high`` are never invalidated one by one, so a read
            # from before them must not fill.
            await self.cache.reset(high, ConsistencyToken(0), floor=at)
            log.info("follower starts fresh at seq %d (cache epoch %d)", high, self.cache.epoch)
        else:
            self.cursor = saved
            log.info("follower resumes at seq %d", saved)

    async def run(self) -> None:
        while True:
            try:
                await self._start()
                while True:
                    await self.step()
            except (Unavailable, RedisError, OSError, LostState) as exc:
                log.warning("follower paused: %s", exc)
                await asyncio.sleep(0.5)

    async def step(self) -> None:
        """Waits for the replica to move, then processes everything it now shows."""
        if self.clock.position <= self.mark.lsn:
            await self.clock.advanced()
        while True:
            step = await self.replica.feed_since(self.cursor, self.batch)
            changes, before, after = step.rows, step.before, step.after
            if changes:
                self.cursor = changes[-1][0]
            twins = step.keys(VIEW_KINDS)
            if twins or changes or (step.complete and before > self.mark):
                kept = await self.cache.invalidate(
                    twins, after, self.cursor, before if step.complete else None
                )
                if not kept:
                    raise LostState("Redis lost the follower's state (restarted?); starting over")
            if changes:
                for listener in self.listeners:
                    await listener(changes, after)
            if not step.more:  # pending past the limit: the mark waits for the sequencer
                if step.complete:
                    self.mark = max(self.mark, before)
                return
