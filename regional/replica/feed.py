"""Change-feed reads on the replica: rows after a cursor, bracketed by replay positions read on
the same connection (what the follower, the search index and the realtime tail build on), and the
feed's head (lowest retained and highest seq)."""

from __future__ import annotations

from mbwire import ConsistencyToken
from regional.replica.pool import ReplicaPool


class FeedReads(ReplicaPool):
    """The pool's change-feed reads (``Replica`` has them)."""

    async def feed_since(
        self, cursor: int, limit: int = 1000
    ) -> tuple[ConsistencyToken, list[tuple[int, str, str]], ConsistencyToken]:
        """Feed rows after ``cursor``, between two replay positions read on the same connection:
        every change committed at or before ``before`` is among the rows (or earlier ones), and
        every row's commit is at or before ``after``."""
        async with self.connection() as conn:
            before = await self.position_on(conn)
            cur = await conn.execute(
                "select seq, kind, key from change_feed where seq > %s order by seq limit %s",
                (cursor, limit),
            )
            rows = [(r[0], r[1], r[2]) for r in await cur.fetchall()]
            after = await self.position_on(conn)
        return before, rows, after

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
