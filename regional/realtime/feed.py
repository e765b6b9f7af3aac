"""This worker's tail of ``change_feed`` on the hub's own replica, and replays for ``since``.

Why not the follower's ``listeners``: the follower runs in one worker per hub (under a Redis
lease) and sockets land on any worker, so every worker tails the feed itself, like the search
index does. Rows are read between replay positions on one connection (``Replica.feed_since``'s
rule): every row's commit is at or before ``after``, so ``after`` is a token at which all of a
batch's changes are readable here, and a message never precedes readable data.

``seq`` is the feed's global position (drawn by central's sequencer in the order rows became
visible on the primary, the same in every region), so a client resuming at another region's hub
with ``since`` gets exactly the rows after it. Rows older than central's
``CENTRAL_FEED_RETENTION_S`` (7 days by default) are pruned: a ``since`` below the oldest
retained row is a gap. A row committed but not numbered yet evicts the worker's
near cache at once (``Replica.feed_since``'s rule) and reaches subscribers once numbered.

A twin's row without a version is its erasure (central/erasure.py): the worker forgets the
twin's data key then (``Keyring.forget``), as every worker runs this tail and each holds its own
keyring; the keyring's TTL bounds a key's life in a worker that missed the row."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mbwire import ConsistencyToken, Unavailable
from regional.near import NearCache
from regional.replica import ReplayClock, Replica
from regional.replica.feed import FeedStep, split, with_position

log = logging.getLogger("memorybank.realtime")


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    kind: str
    key: str
    version: int | None


Sink = Callable[[list[Row], ConsistencyToken], Awaitable[None]]
# Given each step as the follower reads it (``regional.follower.Follower.take``), in the worker
# that runs the follower, so a hub tails its feed once per worker, not once more for the cache.
Rider = Callable[[FeedStep], Awaitable[None]]

_ROWS = "select seq, kind, key, version from change_feed where seq > %s"
# The tail's step: numbered rows, the pending ones and the replay position after them, in one
# statement (one snapshot: regional.replica.feed says why the position may share it).
_STEP = with_position(f"""({_ROWS} order by seq limit %s) union all
(select null, kind, key, version from change_feed where seq is null limit %s)""", 4)


class RealtimeFeed:
    def __init__(self, replica: Replica, clock: ReplayClock, *, batch: int = 1000,
                 step_every_s: float = 0.0) -> None:
        self.replica, self.clock, self.batch = replica, clock, batch
        # Steps at least this far apart: under writes the replica moves every millisecond or
        # two, and each move read on its own costs two statements (and the follower's Redis
        # pipeline) for a row or two.
        self.step_every_s = step_every_s
        self._stepped_at = 0.0
        self.cursor = -1          # the last seq handed to the sink; -1 until started
        self.cursor_at = ConsistencyToken(0)  # a position at which the rows up to it were read
        self.token = ConsistencyToken(0)
        self.covered = ConsistencyToken(0)  # every row committed at or before it handed on
        self.sink: Sink | None = None
        self.rider: Rider | None = None  # set and cleared by the follower (``Follower.ride``)
        self.started = asyncio.Event()
        self.near: NearCache | None = None  # the worker's twin views, evicted from here
        self._moved = asyncio.Condition()   # notified whenever ``cursor`` moves

    async def run(self) -> None:
        while True:
            try:
                if self.cursor < 0:
                    if self.near is not None:
                        self.near.clear()
                    _, self.cursor, self.cursor_at = await self.replica.feed_head_at()
                    self.started.set()
                while True:
                    await self.step()
            except Unavailable as exc:
                log.warning("realtime feed paused: %s", exc)
                await asyncio.sleep(0.5)

    async def step(self) -> None:
        """Waits for the replica to move past what the last step covered, then hands on every
        row it now shows. Covered means ``before``, not ``after``: a row committed between the
        read and ``after`` is not among the rows, so waiting for a replay beyond ``after``
        would hold it back until the next write."""
        if self.clock.position <= self.covered.lsn:
            await self.clock.advanced()
        pause = self.step_every_s - (time.monotonic() - self._stepped_at)
        if pause > 0:
            await asyncio.sleep(pause)
        self._stepped_at = time.monotonic()
        while True:
            before, rows, pending, after = await self.tail()
            more = len(rows) >= self.batch
            complete = not more and len(pending) < self.batch
            step = FeedStep(before, [(r.seq, r.kind, r.key) for r in rows], pending, after,
                            more=more, complete=complete)
            await self.hand_on(rows, after, before if complete else None, pending, step)
            if not more:
                if complete:
                    self.covered = max(self.covered, before)
                return

    async def tail(self) -> tuple[ConsistencyToken, list[Row], list[tuple[str, str]],
                                  ConsistencyToken]:
        """The rows after the cursor and the pending ones (kind, key), between two replay
        positions read on one connection (``Replica.feed_since``'s rule): the clock's before
        the statement, and the one the statement read after its rows."""
        async with self.replica.connection() as conn:
            before = await self.replica.floor(conn)  # the clock's, without a statement
            cur = await conn.execute(_STEP, (self.cursor, self.batch, self.batch))
            rows, pending, after = split(await cur.fetchall())
        return before, [Row(r[0], r[1], r[2], r[3]) for r in rows], pending, after

    async def hand_on(self, rows: list[Row], after: ConsistencyToken,
                      before: ConsistencyToken | None = None,
                      pending: list[tuple[str, str]] | None = None,
                      step: FeedStep | None = None) -> None:
        """Gives rows read up to ``after`` to the sink, and wakes whoever waits in ``reach``.
        ``before``: a replay position read before the rows, when they are all the feed had up
        to it (every change committed at or before it is among them, ``pending`` or handed on
        earlier). ``pending``: (kind, key) of rows not numbered yet, evicted only. ``step``:
        the same read as the follower's ``FeedStep``, for the rider (the Redis cache is
        invalidated before subscribers hear of the rows)."""
        if self.near is not None:  # before anyone hears of the rows
            self.near.evict([*((r.kind, r.key) for r in rows), *(pending or ())], before)
        for row in rows:
            if row.kind == "twin" and row.version is None:  # erased
                self.replica.keys.forget(row.key)
        # The rider is taken and the cursor moved in one go (no await between): a follower
        # that saw this cursor and rode on is given exactly the rows after it.
        rider = self.rider if step is not None else None
        if rows:
            self.cursor, self.cursor_at = rows[-1].seq, after
        if rider is not None and step is not None:
            await rider(step)
        if rows:
            if self.sink is not None:
                await self.sink(rows, after)
        self.token = max(self.token, after)
        async with self._moved:
            self._moved.notify_all()

    async def reach(self, seq: int, wait_s: float) -> bool:
        """Waits (at most ``wait_s``) until every row up to ``seq`` was handed to the sink."""
        try:
            async with asyncio.timeout(wait_s), self._moved:
                await self._moved.wait_for(lambda: self.cursor >= seq)
        except TimeoutError:
            return False
        return True

    async def read(self, since: int, upto: int | None, limit: int,
                   kinds_keys: tuple[list[str], list[str], list[str]] | None = None,
                   ) -> tuple[ConsistencyToken, list[Row], ConsistencyToken]:
        """Rows ``since < seq <= upto`` (any when None), oldest first, between two replay
        positions read on the same connection (``Replica.feed_since``'s rule): ``before``, at or
        after whose commit every change is among the rows or earlier ones (when fewer than
        ``limit`` came), and ``after``, at which every row is readable. ``kinds_keys`` = (twin
        kinds, twin ids, public kinds) filters a replay to the rows of a client's channels."""
        sql, args = _ROWS, list[object]([since])
        if upto is not None:
            sql, args = sql + " and seq <= %s", [*args, upto]
        if kinds_keys is not None:
            sql += " and ((kind = any(%s) and key = any(%s)) or kind = any(%s))"
            args.extend(kinds_keys)
        sql += " order by seq limit %s"
        async with self.replica.connection() as conn:
            before = await self.replica.floor(conn)
            cur = await conn.execute(sql, (*args, limit))
            found = [Row(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]
            after = await Replica.position_on(conn)
        return before, found, after

    async def bounds(self) -> tuple[int, int]:
        """(lowest retained seq, highest seq) on this replica."""
        return await self.replica.feed_head()
