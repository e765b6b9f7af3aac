"""The replica's connection pool, and the replay position read on a connection.

``ReplicaPool`` lends connections (a lost replica is a 503 ``Unavailable``, never a psycopg
error), opens repeatable-read snapshots, and reads ``REPLAY_SQL``: where this replica's replay
has come (on the primary, where its WAL ends). Reading the position on the same connection as a
query orders the two, which is what makes an answer's consistency token true."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from mbwire import ConsistencyToken, Unavailable
from sealing import Keyring

# Replayed and received positions, the replay delay in ms, and whether WAL streams in.
POSITION_SQL = """
select case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
            else pg_current_wal_lsn() end::text,
       case when pg_is_in_recovery() then pg_last_wal_receive_lsn()
            else pg_current_wal_lsn() end::text,
       coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000, 0)::float8,
       not pg_is_in_recovery()
         or coalesce((select status = 'streaming' from pg_stat_wal_receiver), false)
"""


# Which server instance a connection reached: a restart (or a re-clone) starts a new one.
INSTANCE_SQL = "select pg_postmaster_start_time()::text"
# Only the position (``position_on``): POSITION_SQL's WAL receiver row and replay timestamp
# are the clock's health figures, and building that row costs the server more than the rest.
# The expression alone is also a column of the feed's reads (``regional.replica.feed``).
REPLAY_POSITION = ("(case when pg_is_in_recovery() then pg_last_wal_replay_lsn()"
                   " else pg_current_wal_lsn() end)::text")
REPLAY_SQL = f"select {REPLAY_POSITION}"


class ReplicaPool:
    """Connections to the region's replica (autocommit; ``snapshot`` for a transaction)."""

    def __init__(self, url: str, *, max_size: int = 8, pool_timeout_s: float = 0.8,
                 keys: Keyring | None = None) -> None:
        # keys: what opens the twins' sealed values this replica holds (sealing/); none
        # configured: reading a twin's personal data answers 503.
        self.keys = keys if keys is not None else Keyring(None)
        # pool_timeout_s: how long a read waits for a connection (none while the replica
        # restarts). Below the edge's per-hub attempt timeout, so the hub answers 503 itself and
        # the edge moves the read to another region within its budget (HubSettings says more).
        self.pool_timeout_s = pool_timeout_s
        self.pool = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, name="replica",
            kwargs={"autocommit": True, "connect_timeout": 2}, configure=self._configure,
        )
        # The replay clock of the same replica (set by the hub's wiring): ``floor`` takes the
        # position from it instead of a statement per read. Which server instance each pooled
        # connection reached (its postmaster's start time), so the clock's position is only
        # used for connections to the instance it polled.
        self.clock: Any = None
        self._instance: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # What ``snapshot``'s transactions are: said in their BEGIN, not a statement of its own
        # after it (autocommit statements outside a transaction block are unaffected).
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await conn.set_read_only(True)
        cur = await conn.execute(INSTANCE_SQL)
        row = await cur.fetchone()
        self._instance[conn] = str(row[0]) if row else ""

    async def floor(self, conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken:
        """A replay position every read on ``conn`` from now on reflects at least: the replay
        clock's, when it polls the same server instance as ``conn`` reached and ticked within
        its health window (replay only moves forward within an instance, and a new snapshot
        shows every transaction replayed before it), else read on ``conn`` (a statement).
        Before: one position statement per read, 13 % of a hub's CPU under the load mix."""
        return self.clock_floor(conn) or await self.position_on(conn)

    def clock_floor(self, conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken | None:
        """``floor`` when the clock can say it, without a statement; else None."""
        clock = self.clock
        if (clock is not None and clock.position and clock.healthy
                and clock.instance and clock.instance == self._instance.get(conn)):
            return ConsistencyToken(clock.position)
        return None

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self.pool.connection(timeout=self.pool_timeout_s) as conn:
                yield conn
        except (psycopg.OperationalError, TimeoutError) as exc:
            raise Unavailable(f"this region's replica is unavailable ({type(exc).__name__})",
                              retry_after=1) from None

    @asynccontextmanager
    async def snapshot(
        self,
    ) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], ConsistencyToken]]:
        """One read-only repeatable-read transaction, and the replay position it reflects at
        least: every statement inside agrees with the others. The position is read before the
        transaction's snapshot is taken (at its first statement), so every write up to it is in
        the snapshot; read inside, it could run ahead of the snapshot. The transaction's
        characteristics are the connection's (``_configure``): one ``BEGIN ISOLATION LEVEL
        REPEATABLE READ READ ONLY``, not a ``SET TRANSACTION`` round trip after it."""
        async with self.connection() as conn:
            answered = await self.floor(conn)
            async with conn.transaction():
                yield conn, answered

    @asynccontextmanager
    async def statement(
        self,
    ) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], ConsistencyToken]]:
        """A connection for a read of one statement, and the replay position that statement
        reflects at least (read before it, as ``snapshot``'s). One statement sees one snapshot
        on its own, so it needs no transaction: ``snapshot``'s BEGIN and COMMIT would be two
        more round trips."""
        async with self.connection() as conn:
            yield conn, await self.floor(conn)

    @staticmethod
    async def position_on(conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken:
        """The replay position, read on ``conn`` (so it orders with that connection's reads)."""
        cur = await conn.execute(REPLAY_SQL)
        row = await cur.fetchone()
        assert row is not None
        return ConsistencyToken.from_pg_lsn(row[0])
