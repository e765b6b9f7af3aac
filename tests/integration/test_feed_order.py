"""The change feed's order without a commit lock (migration 0011, central/sequencer.py): writers
commit their rows unnumbered, in any order, the sequencer numbers what has committed, and a
follower reading its region's replica (``Replica.feed_since``, what the hubs' cache, index and
realtime tail run on) never skips a row, never sees one twice, and, whenever it claims a replay
position as covered, has met every row committed by then (numbered or still pending).

Hypothesis draws the schedule: how many writers, the order they commit in (they insert in
start order, so a late committer holds an early id), which roll back, and where sequencer ticks
and follower reads fall between the commits. Central's own sequencers tick meanwhile too."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbwire import ConsistencyToken
from regional.replica import Replica
from tests.integration.conftest import LiveStack

FEED_LOCK = 1296189765  # the sequencer ticks' lock (migration 0011)
KIND = "feed-test"  # routed nowhere: hubs skip it (regional/realtime/channels.py)
Action = str  # "tick" (one sequencer tick) or "read" (one follower step on the replica)


class Follower:
    """What regional/follower.py does with a step, reduced to the bookkeeping under test."""

    def __init__(self, replica: Replica, cursor: int, run: str) -> None:
        self.replica, self.cursor, self.run = replica, cursor, run
        self.numbered: dict[str, int] = {}  # our key -> the seq it was met at

    async def step(self, committed: dict[str, ConsistencyToken]) -> None:
        while True:
            step = await self.replica.feed_since(self.cursor, 1000)
            # ``after`` is read inside the step's statement (its last row), after ``before``
            assert step.after >= step.before
            seqs = [seq for seq, _, _ in step.rows]
            assert seqs == sorted(set(seqs)) and all(s > self.cursor for s in seqs)
            for seq, kind, key in step.rows:
                if kind == KIND and key.startswith(self.run):
                    assert key not in self.numbered, f"{key} met twice"
                    self.numbered[key] = seq
            if step.rows:
                self.cursor = step.rows[-1][0]
            if not step.more:
                break
        if step.complete:
            pending = {key for kind, key in step.pending if kind == KIND}
            missed = [key for key, at in committed.items()
                      if at <= step.before and key not in self.numbered and key not in pending]
            assert not missed, f"committed by {step.before}, never met: {missed}"


async def _position(conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken:
    cur = await conn.execute("select pg_current_wal_lsn()::text")
    row = await cur.fetchone()
    assert row is not None
    return ConsistencyToken.from_pg_lsn(row[0])


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[int], set[int], list[list[Action]]]:
    writers = draw(st.integers(min_value=2, max_value=8))
    order = draw(st.permutations(range(writers)))
    aborted = draw(st.sets(st.sampled_from(range(writers)), max_size=writers // 2))
    between = draw(st.lists(st.lists(st.sampled_from(["tick", "read"]), max_size=3),
                            min_size=writers, max_size=writers))
    return list(order), aborted, between


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedules())
async def test_followers_never_skip_or_repeat_a_row(
        live: LiveStack, schedule: tuple[list[int], set[int], list[list[Action]]]) -> None:
    order, aborted, between = schedule
    primary, run = live.topology.postgres.primary, f"p{uuid.uuid4().hex[:10]}-"
    replica = Replica(live.topology.postgres.replicas["iad"])
    await replica.open()
    writers = [await psycopg.AsyncConnection.connect(primary) for _ in order]
    admin = await psycopg.AsyncConnection.connect(primary, autocommit=True)
    try:
        _, high = await replica.feed_head()
        follower = Follower(replica, high, run)
        for i, conn in enumerate(writers):  # in start order: ids grow with i
            await conn.execute("insert into change_feed (kind, key) values (%s, %s)",
                               (KIND, f"{run}{i}"))
        committed: dict[str, ConsistencyToken] = {}
        for i, actions in zip(order, between, strict=True):
            if i in aborted:
                await writers[i].rollback()
            else:
                await writers[i].commit()
                committed[f"{run}{i}"] = await _position(writers[i])
            for action in actions:
                if action == "tick":
                    await admin.execute("select feed_sequence(5000, false)")
                else:
                    await follower.step(committed)
        # Everything numbered (by us or central), replayed, and met exactly once.
        deadline = time.monotonic() + 30
        while set(follower.numbered) != set(committed) and time.monotonic() < deadline:
            await admin.execute("select feed_sequence(5000, true)")
            await asyncio.sleep(0.05)
            await follower.step(committed)
        assert set(follower.numbered) == set(committed)
        assert not {f"{run}{i}" for i in aborted} & set(follower.numbered)
        # Numbered in the order they became visible: a row committed after another's tick
        # never gets a smaller seq than one that tick numbered (checked on the primary).
        # A tick of central's is visible on the replicas while it still waits for the
        # synchronous standby's answer, before the primary shows it (a transaction leaves the
        # primary's list of running ones only after that wait): the ticks' lock is released
        # after it, so taking the lock waits for such a tick.
        await admin.execute("select pg_advisory_lock(%s), pg_advisory_unlock(%s)",
                            (FEED_LOCK, FEED_LOCK))
        cur = await admin.execute("select key, seq from change_feed where key like %s",
                                  (f"{run}%",))
        assert dict(await cur.fetchall()) == follower.numbered
    finally:
        for conn in (*writers, admin):
            await conn.close()
        await replica.close()


async def test_a_write_does_not_wait_for_another_writers_commit(live: LiveStack) -> None:
    """The lock migration 0001 took in every feed-writing commit is gone: a transaction holding
    a feed row open does not stop another from committing one (before, the second waited for
    the first to end)."""
    primary = live.topology.postgres.primary
    async with (await psycopg.AsyncConnection.connect(primary) as slow,
                await psycopg.AsyncConnection.connect(primary) as fast):
        await slow.execute("insert into change_feed (kind, key) values (%s, 'slow')", (KIND,))
        await slow.execute("select pg_advisory_xact_lock(%s)", (FEED_LOCK,))  # a tick in progress
        await fast.execute("insert into change_feed (kind, key) values (%s, 'fast')", (KIND,))
        await asyncio.wait_for(fast.commit(), timeout=5)
        await slow.rollback()
