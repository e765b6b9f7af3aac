"""The change feed's sequencer: numbers committed feed rows (and agent registrations) in the
order they became visible, off every writer's commit path (migration 0011).

Why not at commit, as before: a number drawn inside the writer's transaction must be drawn under
a lock held until the commit is visible, and under synchronous commit that is after the standby's
acknowledgement, so every commit of the cell waited for the previous one's round trip. Here a
writer commits its row unnumbered; a tick (one statement, ``feed_sequence``) numbers every row
already committed, and ticks run one at a time under the lock. Only ticks wait on each other's
round trip, and one tick numbers all that committed meanwhile, so the feed keeps up with any
write rate at one tick per standby round trip.

Every shard runs a sequencer; a tick that finds the lock taken leaves it to the one ticking and
looks again shortly, so losing a shard (or its region) never stops the feed. A shard ticks as
soon as it has committed a write (``Store.wrote``), and every ``idle_s`` for the others' rows.
What a row waits for its number: at most the tick in progress plus one tick, on a quiet cell a
few milliseconds. Readers that must not wait for it read the pending rows too
(regional/replica/feed.py)."""

from __future__ import annotations

import asyncio
import logging

from central.store import Store
from mbwire import ConsistencyToken, Unavailable

log = logging.getLogger("memorybank.sequencer")

BATCH = 5000  # rows numbered per tick at most (a backlog takes several ticks)
IDLE_S = 0.05  # how often a shard looks for rows other shards committed
BUSY_S = 0.005  # how soon it looks again when another shard was ticking


class Sequencer:
    def __init__(self, store: Store, *, batch: int = BATCH, idle_s: float = IDLE_S) -> None:
        self.store, self.batch, self.idle_s = store, batch, idle_s

    async def tick(self, *, wait: bool = False) -> int:
        """One tick: how many rows it numbered, -1 when another shard was ticking (and not
        ``wait``)."""
        async with self.store._connection() as conn:
            cur = await conn.execute("select feed_sequence(%s, %s)", (self.batch, wait))
            row = await cur.fetchone()
        return int(row[0]) if row is not None else 0

    async def settle(self) -> ConsistencyToken:
        """Numbers every row committed before the call (waiting for a tick in progress) and
        returns a token at which they are numbered: for a write whose answer must show its
        number (an agent's registration in the listing)."""
        while await self.tick(wait=True) >= self.batch:
            pass
        return await self.store.current_token()

    async def drain(self) -> None:
        """Ticks until nothing is pending; when another shard holds the lock, looks again in
        ``BUSY_S`` (its tick may have started before this shard's rows committed)."""
        while (numbered := await self.tick()) != 0:
            if numbered < 0:
                await asyncio.sleep(BUSY_S)

    async def run(self) -> None:
        wrote = self.store.wrote
        while True:
            try:
                async with asyncio.timeout(self.idle_s):
                    await wrote.wait()
            except TimeoutError:
                pass
            wrote.clear()
            try:
                await self.drain()
            except Unavailable as exc:  # the primary is away: numbering resumes with it
                log.warning("feed sequencer paused: %s", exc)
                await asyncio.sleep(0.5)
