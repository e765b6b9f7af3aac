"""Popular items ranked when they change (migration 0016): the hubs answer a twin with neither
profile nor events from the kept top rows (regional/popular.py) instead of ranking the whole
agent directory or knowledge base per request.

Who ranks: every shard, after its own changes: a registration or a deletion in the directory
(central/agents.py), an ingest or a deletion of a knowledge document (central/knowledge.py)
marks its kind changed. Off the commit path: a write never waits for a ranking (one costs what
a request cost before: it reads the whole table), and a loop per kind ranks at once after the
first change, then at most once per ``interval_s`` however many writes come, like a checkpoint
loop waiting on "dirty" and a timer, and never for more than a fifth of the time (``DUTY``: a
ranking of 100k rows takes about 0.6 s on a 2-core box, bench/popular_bench.py). Rankings of
one kind run one at a time in the database (``popular_refresh`` takes a lock), so several shards
never interleave theirs.

What that gives: a change is ranked within ``interval_s`` (or five rankings' time, on a
large table) plus one ranking, and reaches every hub with the rest of the cell's rows. Popular
lists are advisory, so a write's token may come before its ranking; a removal is left out at
once anyway (the hubs join the kept rows to the live ones). A registration is listed by the
feed's sequencer after its commit (migration 0011), so an agents' ranking first settles the
sequencer: it ranks every registration committed before it. At start every shard ranks both
kinds once (a process stopped between a commit and its ranking leaves nothing behind for
long)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from central.sequencer import Sequencer
from central.store import Store

log = logging.getLogger("memorybank.popular")

Kind = Literal["agent", "knowledge"]
KINDS: tuple[Kind, ...] = ("agent", "knowledge")
INTERVAL_S = 1.0  # at most one ranking per kind and shard per interval
DUTY = 0.2  # and at most this share of the time


class PopularRanker:
    def __init__(self, store: Store, sequencer: Sequencer, *,
                 interval_s: float = INTERVAL_S) -> None:
        self.store, self.sequencer, self.interval_s = store, sequencer, interval_s
        self._dirty = {kind: asyncio.Event() for kind in KINDS}
        self.rankings = 0  # how many rankings this process committed

    def changed(self, kind: Kind) -> None:
        """A committed write changed this kind's rows: rank them soon (never waits)."""
        self._dirty[kind].set()

    async def rank(self, kind: Kind) -> int:
        """One ranking now; returns how many rows it kept."""
        if kind == "agent":
            await self.sequencer.settle()  # registrations committed so far are listed
        async with self.store._connection() as conn:
            cur = await conn.execute("select popular_refresh(%s)", (kind,))
            row = await cur.fetchone()
        self.rankings += 1
        return int(row[0]) if row is not None else 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for kind in KINDS:
                group.create_task(self._loop(kind), name=f"popular-{kind}")

    async def _loop(self, kind: Kind) -> None:
        clock, dirty = asyncio.get_running_loop(), self._dirty[kind]
        dirty.set()  # once at start
        while True:
            await dirty.wait()
            dirty.clear()
            started = clock.time()
            try:
                await self.rank(kind)
            except Exception as exc:  # the primary away, a failover: rank again later
                log.warning("popular %s ranking failed, retrying: %s", kind, exc)
                dirty.set()
            took = clock.time() - started
            await asyncio.sleep(max(0.0, max(self.interval_s, took / DUTY) - took))
