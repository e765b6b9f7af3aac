"""The change-feed follower: reads ``change_feed`` from this region's replica (so it never hears
of a change before the replica can show it) and invalidates the Redis cache. Later consumers
hang off ``listeners`` (realtime does not: it runs in every hub worker, this in one, so each
worker tails the feed itself, ``regional/realtime/feed.py``). In the worker that runs it, the
follower reads the feed itself only until it has caught up with that worker's realtime tail;
then it takes the tail's reads (``ride``): one feed read per move of the replica, not two.

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
from regional.realtime.feed import RealtimeFeed
from regional.replica import ReplayClock, Replica
from regional.replica.feed import FeedStep

log = logging.getLogger("memorybank.follower")

Change = tuple[int, str, str]  # (seq, kind, key)
Listener = Callable[[list[Change], ConsistencyToken], Awaitable[None]]


class LostState(Exception):
    """The hub's Redis no longer holds what the follower set up in it."""


class Follower:
    def __init__(self, replica: Replica, clock: ReplayClock, cache: TwinCache,
                 feed: RealtimeFeed | None = None) -> None:
        self.replica, self.clock, self.cache = replica, clock, cache
        self.cursor = 0
        self.mark = ConsistencyToken(0)
        self.listeners: list[Listener] = []
        self.batch = 1000
        # This worker's realtime tail, which reads the same rows on every move of the replica:
        # once the follower has caught up with it, it takes the tail's steps (``ride``) instead
        # of a feed read of its own, and reads alone again whenever it falls out of step.
        self.feed = feed
        self.rides = 0  # steps taken from the tail, for tests and the curious

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
                    feed = self.feed
                    if feed is None or feed.cursor < 0:
                        await self.step()
                    elif feed.cursor == self.cursor:
                        log.info("follower takes the realtime tail's reads from seq %d",
                                 self.cursor)
                        await self.ride(feed)
                    elif feed.cursor > self.cursor:
                        if not await self.catch_up(feed.cursor, feed.cursor_at):
                            await self.step()
                    elif not await feed.reach(self.cursor, 0.5):  # the tail is behind
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
            await self.take(step)
            if not step.more:
                return

    async def catch_up(self, upto: int, seen_at: ConsistencyToken) -> bool:
        """Reads the rows after ``cursor`` up to ``upto``, where the realtime tail is (it read
        them by ``seen_at``), so the two meet: two readers of a moving feed that read on every
        move rarely stop at the same row. A bounded step covers no position (rows after
        ``upto`` are not in it). The cursor moves to ``upto`` itself (past a gap in seq) only
        when this read saw everything the tail saw: its replica had replayed ``seen_at``
        before the read (seq is drawn in the order rows became visible), which a replica that
        restarted behind may not have. False when the cursor did not move."""
        was = self.cursor
        step = await self.replica.feed_since(self.cursor, self.batch, upto=upto, fresh=True)
        await self.take(step)
        if not step.more and step.before >= seen_at:
            self.cursor = upto
        return self.cursor != was

    async def take(self, step: FeedStep) -> None:
        """Acts on one read of the feed: the rows after ``cursor`` and the pending ones."""
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
        if step.complete:  # pending past the limit: the mark waits for the sequencer
            self.mark = max(self.mark, before)

    async def ride(self, feed: RealtimeFeed) -> None:
        """Takes ``feed``'s steps while its cursor is this follower's (checked by the caller,
        with no await before the rider is set: the tail moves its cursor and takes its rider
        in one go, so the next step it gives is the rows after this cursor). Returns when a
        step cannot be taken, raising what ``take`` raised."""
        fell: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def rider(step: FeedStep) -> None:
            if fell.done():
                return
            try:
                await self.take(step)
                self.rides += 1
            except Exception as exc:  # the tail goes on; this follower reads alone again
                feed.rider = None
                fell.set_exception(exc)

        feed.rider = rider
        try:
            await fell
        finally:
            if feed.rider is rider:
                feed.rider = None
