"""Change-feed reads on the replica: rows after a cursor, bracketed by replay positions read on
the same connection (what the follower, the search index and the realtime tail build on), and the
feed's head (lowest retained and highest seq).

A row commits unnumbered and central's sequencer numbers it a tick later (central/sequencer.py).
A follower's cursor moves over numbered rows only ("seq > cursor" never skips one), but a
follower that claims a replay position as covered must also have acted on the rows committed by
then and not yet numbered: ``pending``, read in the same statement (one snapshot). It meets
them again, numbered, later; what it does with them (an eviction, a re-read) is idempotent.

A step is one statement: its ``after`` (every row's commit is at or before it) is the replay
position read as the statement's last row (``with_position``). The statement's snapshot is
taken before any of it runs, so a position read while it runs is at or past every commit the
snapshot shows, as one read on the same connection after it would be, without that round
trip."""

from __future__ import annotations

from typing import Any, NamedTuple

from mbwire import ConsistencyToken
from regional.replica.pool import REPLAY_POSITION, ReplicaPool


def with_position(sql: str, width: int) -> str:
    """``sql`` (rows of ``width`` columns: seq, kind, key, ...) and one row more: the replay
    position in the key column, kind null (a feed row's kind never is)."""
    return f"{sql}\nunion all\nselect null, null, {REPLAY_POSITION}{', null' * (width - 3)}"


def split(found: list[tuple[Any, ...]],
          ) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]], ConsistencyToken]:
    """A ``with_position`` read: its numbered rows (in order), the pending rows' (kind, key),
    and the position."""
    rows: list[tuple[Any, ...]] = []
    pending: list[tuple[str, str]] = []
    after = ConsistencyToken(0)
    for row in found:
        if row[1] is None:
            after = ConsistencyToken.from_pg_lsn(row[2])
        elif row[0] is None:
            pending.append((row[1], row[2]))
        else:
            rows.append(row)
    return rows, pending, after


# One statement, so one snapshot: a row numbered between two statements would be in neither.
_SINCE = with_position("""
(select seq, kind, key from change_feed where seq > %s and seq <= %s order by seq limit %s)
union all
(select null, kind, key from change_feed where seq is null limit %s)""", 3)


class FeedStep(NamedTuple):
    before: ConsistencyToken
    rows: list[tuple[int, str, str]]  # (seq, kind, key), numbered, oldest first
    pending: list[tuple[str, str]]  # (kind, key) of rows committed but not numbered yet
    after: ConsistencyToken
    more: bool  # the numbered rows hit the limit: read on from the last
    complete: bool  # every row there was (neither list hit the limit): ``before`` is covered

    def keys(self, kinds: frozenset[str] | set[str]) -> set[str]:
        """The keys of rows of these kinds, numbered or pending."""
        return ({key for _, kind, key in self.rows if kind in kinds}
                | {key for kind, key in self.pending if kind in kinds})


class FeedReads(ReplicaPool):
    """The pool's change-feed reads (``Replica`` has them)."""

    async def feed_since(self, cursor: int, limit: int = 1000, upto: int = 2**63 - 1,
                         fresh: bool = False) -> FeedStep:
        """Numbered rows after ``cursor`` and the pending ones, between two replay positions read
        on the same connection: every change committed at or before ``before`` is among them (or
        earlier rows) when the step is ``complete``, and every row's commit is at or before
        ``after``. With ``upto``, numbered rows after it are left out (so the step is complete
        only without it). ``before`` is the replay clock's position when it can say it (``floor``: a
        position read earlier from the same server instance serves as well), so a step is one
        statement; ``fresh``: read on the connection (the latest), a statement more."""
        async with self.connection() as conn:
            before = await (self.position_on(conn) if fresh else self.floor(conn))
            cur = await conn.execute(_SINCE, (cursor, upto, limit, limit))
            rows, pending, after = split(await cur.fetchall())
        more = len(rows) >= limit
        return FeedStep(before, [(r[0], r[1], r[2]) for r in rows], pending, after, more=more,
                        complete=not more and len(pending) < limit and upto == 2**63 - 1)

    async def feed_head(self) -> tuple[int, int]:
        """(lowest retained seq, highest seq) of the change feed."""
        low, high, _ = await self.feed_head_at()
        return low, high

    async def feed_head_at(self) -> tuple[int, int, ConsistencyToken]:
        """``feed_head`` and a replay position read after it on the same connection: every
        change up to the highest seq committed at or before that position."""
        async with self.connection() as conn:
            cur = await conn.execute(
                "select coalesce(min(seq), 0), coalesce(max(seq), 0) from change_feed"
            )
            row = await cur.fetchone()
            assert row is not None
            return row[0], row[1], await self.position_on(conn)
