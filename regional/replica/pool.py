"""The replica's connection pool, and the replay position read on a connection.

``ReplicaPool`` lends connections (a lost replica is a 503 ``Unavailable``, never a psycopg
error), opens repeatable-read snapshots, and reads ``POSITION_SQL``: where this replica's replay
has come (on the primary, where its WAL ends). Reading the position on the same connection as a
query orders the two, which is what makes an answer's consistency token true."""

from __future__ import annotations

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
            kwargs={"autocommit": True, "connect_timeout": 2},
        )

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
        the snapshot; read inside, it could run ahead of the snapshot."""
        async with self.connection() as conn:
            answered = await self.position_on(conn)
            async with conn.transaction():
                await conn.execute("set transaction isolation level repeatable read, read only")
                yield conn, answered

    @staticmethod
    async def position_on(conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken:
        """The replay position, read on ``conn`` (so it orders with that connection's reads)."""
        cur = await conn.execute(POSITION_SQL)
        row = await cur.fetchone()
        assert row is not None
        return ConsistencyToken.from_pg_lsn(row[0])
