"""The primary store: every write is one transaction that changes the data, appends its
change-feed row and commits; only then is it acknowledged, with the commit's LSN as its token.

A feed row commits unnumbered: its ``seq`` is drawn after the commit by central's sequencer
(central/sequencer.py, migration 0011), in the order rows became visible, so no write waits for
another's round trip to the standby and a follower reading ``seq > cursor`` never skips one.

A twin's personal data is sealed here, as it is written, under the twin's data key
(``sealing.TwinKey``, migration 0013), and opened here as it is read back for a merge:
``twins.state`` as field ``state``, ``twins.profile`` (JSON) as ``profile``, each
``twin_updates.update`` as ``update:<version>`` (so a row moved to another version, twin or
column does not open). Ids, owners, versions and grants stay plaintext: SQL decides on them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from central import replay
from mbhttp.tracing import traced_context
from mbwire import ConsistencyToken, Unavailable, Unprocessable
from mbwire.access import TWIN_WRITABLE_SQL
from sealing import TwinKey

# A twin write appends its update and moves the head in one statement, only if the head is still
# the version the writer merged over and the caller may write (mbwire.access): the resident
# path's whole round trip. The head's update leaves state and profile alone (TOAST pointers,
# not rewritten) and no indexed column changes, so it is a small HOT update.
_APPEND_IF_CURRENT = f"""
with head as (
    update twins t set version = %(version)s + 1, updated_at = now()
    where t.twin_id = %(twin)s and t.version = %(version)s and {TWIN_WRITABLE_SQL}
    returning t.twin_id, t.version, t.compacted),
logged as (
    insert into twin_updates (twin_id, version, update)
    select twin_id, version, %(update)s from head),
fed as (
    insert into change_feed (kind, key, version) select 'twin', twin_id, version from head)
select compacted from head
"""
_APPEND = """
with head as (
    update twins set version = %(version)s, updated_at = now() where twin_id = %(twin)s)
insert into twin_updates (twin_id, version, update) values (%(twin)s, %(version)s, %(update)s)
"""
# Compaction: the state and profile at `version` replace the stored ones and the log up to it
# goes, in one statement (so one snapshot), only if nobody compacted further already.
_COMPACT = """
with folded as (
    update twins set state = %(state)s, profile = %(profile)s, compacted = %(version)s
    where twin_id = %(twin)s and compacted < %(version)s and version >= %(version)s
    returning twin_id)
delete from twin_updates u using folded f
where u.twin_id = f.twin_id and u.version <= %(version)s
"""
# Of the oldest ``batch`` feed rows by id (the primary key), those before the first one still
# within the retention, as an id range the delete finds by the same index. The delete checks the
# time again: a row whose writer drew its id earlier may have committed since.
_PRUNE_FEED = """
with oldest as (select id, committed_at from change_feed order by id limit %(batch)s)
delete from change_feed
where id >= (select min(id) from oldest)
  and id < coalesce((select min(id) from oldest
                     where committed_at >= now() - make_interval(secs => %(secs)s)),
                    (select max(id) + 1 from oldest))
  and committed_at < now() - make_interval(secs => %(secs)s)
"""
_TWIN_LOG = """
select t.version, t.compacted, t.state, array(
    select u.update from twin_updates u
    where u.twin_id = t.twin_id and u.version > t.compacted and u.version <= t.version
    order by u.version)
from twins t where t.twin_id = %s
"""


@dataclass(frozen=True, slots=True)
class TwinHead:
    owner_sub: str
    version: int
    compacted: int  # the version the stored state and profile hold (the log has the rest)


class WriteTx:
    """The statements a write may run inside its one transaction."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.feed: list[tuple[str, str, int | None]] = []
        self.token: ConsistencyToken | None = None  # set once committed
        # A keyed write (central/replay.py): the claimed key, and the answer stored with it.
        self.claim: Any = None
        self.answer: Any = None
        self.keyed: list[Any] = []  # keys answered inside a shared transaction (replay.keyed)

    async def lock_twin(self, twin_id: str) -> TwinHead | None:
        cur = await self.conn.execute(
            "select owner_sub, version, compacted from twins where twin_id = %s for update",
            (twin_id,),
        )
        row = await cur.fetchone()
        return TwinHead(row[0], row[1], row[2]) if row else None

    async def twin_log(self, key: TwinKey, twin_id: str,
                       ) -> tuple[int, bytes, list[bytes]] | None:
        """The twin's head version, its compacted state and the log since, in version order,
        opened. The log holds every version after ``compacted`` (each write appends the next
        one; compaction deletes a prefix), so the i-th update is version ``compacted + 1 + i``."""
        cur = await self.conn.execute(_TWIN_LOG, (twin_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        version, compacted, state, log = row
        return version, key.open("state", state), [
            key.open(f"update:{compacted + 1 + i}", u) for i, u in enumerate(log)]

    async def access_of(self, twin_id: str, sub: str) -> str | None:
        cur = await self.conn.execute(
            "select access from twin_grants where twin_id = %s and sub = %s", (twin_id, sub)
        )
        row = await cur.fetchone()
        return row[0] if row else None

    async def insert_twin(
        self, key: TwinKey, twin_id: str, owner_sub: str, state: bytes, profile: dict[str, Any]
    ) -> bool:
        cur = await self.conn.execute(
            "insert into twins (twin_id, owner_sub, state, profile, version, compacted)"
            " values (%s, %s, %s, %s, 1, 1) on conflict (twin_id) do nothing returning 1",
            (twin_id, owner_sub, key.seal("state", state), key.seal_json("profile", profile)),
        )
        inserted = await cur.fetchone() is not None
        if inserted:
            self.feed.append(("twin", twin_id, 1))
        return inserted

    async def append(self, key: TwinKey, twin_id: str, version: int, update: bytes) -> None:
        """Appends ``version``'s update to the twin's log and moves its head (locked first)."""
        await self.conn.execute(_APPEND, {"twin": twin_id, "version": version,
                                          "update": key.seal(f"update:{version}", update)})
        self.feed.append(("twin", twin_id, version))

    async def append_if_current(
        self, key: TwinKey, twin_id: str, version: int, update: bytes, sub: str,
        superuser: bool,
    ) -> int | None:
        """Appends ``version + 1``'s update and its feed row in one statement, only if the
        stored head is ``version`` and ``sub`` may write: the version the stored state holds
        (the log is everything after it), or None if not (nothing stored)."""
        cur = await self.conn.execute(_APPEND_IF_CURRENT, {
            "twin": twin_id, "version": version, "sub": sub, "superuser": superuser,
            "update": key.seal(f"update:{version + 1}", update),
        })
        row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def compact(self, key: TwinKey, twin_id: str, version: int, state: bytes,
                      profile_json: str) -> None:
        """Stores ``version``'s state and profile (JSON text) and drops the log up to it."""
        await self.conn.execute(_COMPACT, {
            "twin": twin_id, "version": version, "state": key.seal("state", state),
            "profile": key.seal("profile", profile_json.encode()),
        })

    async def put_grant(self, twin_id: str, sub: str, access: str, granted_by: str) -> None:
        await self.conn.execute(
            "insert into twin_grants (twin_id, sub, access, granted_by) values (%s, %s, %s, %s)"
            " on conflict (twin_id, sub) do update set access = excluded.access,"
            " granted_by = excluded.granted_by, granted_at = now()",
            (twin_id, sub, access, granted_by),
        )
        self.feed.append(("grant", twin_id, None))

    async def delete_grant(self, twin_id: str, sub: str) -> bool:
        cur = await self.conn.execute(
            "delete from twin_grants where twin_id = %s and sub = %s returning 1", (twin_id, sub)
        )
        deleted = await cur.fetchone() is not None
        if deleted:
            self.feed.append(("grant", twin_id, None))
        return deleted

    async def _append_feed(self) -> None:
        if not self.feed:
            return
        async with self.conn.cursor() as cur:
            await cur.executemany(
                "insert into change_feed (kind, key, version) values (%s, %s, %s)", self.feed
            )


class Store:
    def __init__(
        self, url: str, *, min_size: int = 2, max_size: int = 16, pool_timeout_s: float = 1.0
    ) -> None:
        # A new connection to a stalled primary would hang in connect: bounded, like the wait.
        # reconnect_timeout: a pool that cannot reach the primary gives up its refill after 2 s
        # (the next checkout tries afresh) instead of backing off 1, 2, 4, 8, 16 s: after a
        # failover central reaches the new leader at once (issue 21's region-loss drill).
        self.pool = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False,
            kwargs={"autocommit": True, "connect_timeout": 2}, name="primary",
            reconnect_timeout=2.0,
        )
        self.pool_timeout_s = pool_timeout_s
        self.wrote = asyncio.Event()  # set after each commit: the sequencer's cue

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; driver failures leave as ``Unavailable`` (503 + Retry-After).
        A connection lost during COMMIT is reported the same way: the write was not
        acknowledged, so the client retries (Yjs updates and merge patches are idempotent).

        Data Postgres refuses (``DataError``: a NUL in text or jsonb, a character the encoding
        lacks) leaves as ``Unprocessable`` (422), after the transaction rolled back. The
        checks before the store (``crdt``, the wire types) should catch such input first; this
        is the backstop that keeps a value they missed from becoming a 500."""
        try:
            async with self.pool.connection(timeout=self.pool_timeout_s) as conn:
                yield conn
        except (psycopg.OperationalError, TimeoutError) as exc:
            raise Unavailable(f"the primary database is unavailable ({type(exc).__name__})",
                              retry_after=1) from None
        except psycopg.DataError as exc:
            raise Unprocessable(
                f"the database cannot store this value: {_first_line(exc)}"
            ) from None

    @traced_context("commit")  # the trace of a write: its statements, then COMMIT
    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTx]:
        """One write: yields the transaction; on clean exit appends the feed rows, commits, and
        sets ``tx.token`` to an LSN at or after the end of the commit record."""
        async with self._connection() as conn:
            tx = WriteTx(conn)
            async with conn.transaction():
                await replay.claim(tx)
                yield tx
                if conn.info.transaction_status == TransactionStatus.INERROR:
                    # A statement failed and nothing rolled it back (code that caught a driver
                    # error without a savepoint). COMMIT would answer ROLLBACK without an
                    # error, so refuse here: nobody in the transaction may be told it is stored.
                    raise Unavailable("a statement of this write failed; nothing of it was "
                                      "stored", retry_after=1)
                await tx._append_feed()
                await replay.record(tx)
            tx.token = await replay.committed(tx)
            self.wrote.set()
            await replay.stamp(tx)

    async def check(self, timeout_s: float) -> None:
        """A cheap query on the primary within ``timeout_s`` (a stalled primary never answers):
        ``Unavailable`` if it cannot be had, or the server is not writable (a standby)."""
        try:
            async with asyncio.timeout(timeout_s), self._connection() as conn:
                cur = await conn.execute("select pg_is_in_recovery()")
                row = await cur.fetchone()
        except TimeoutError:
            raise Unavailable("the primary database did not answer in time",
                              retry_after=1) from None
        if row is None or row[0]:
            raise Unavailable("the database central holds is not a writable primary",
                              retry_after=1)

    async def logged_twins(self, limit: int) -> list[str]:
        """Up to ``limit`` twins whose update log is not empty (the log holds only what is not
        compacted yet, so this reads a small index)."""
        async with self._connection() as conn:
            cur = await conn.execute(
                "select distinct twin_id from twin_updates limit %s", (limit,))
            return [row[0] for row in await cur.fetchall()]

    async def current_token(self) -> ConsistencyToken:
        async with self._connection() as conn:
            return await _wal_position(conn)

    async def prune_feed(self, older_than_s: int, batch: int = 10_000) -> int:
        """Drops change-feed rows older than the retention; a hub whose cursor falls behind the
        oldest kept row resets its cache instead of resuming (regional/follower.py).

        There is no index on committed_at (it would cost every write one more), so each statement
        reads the oldest ``batch`` rows by id and deletes those before the first one still within
        the retention: a round reads what it deletes plus at most one batch, never the whole feed,
        and no statement holds a long transaction. An older row behind a younger one (ids are
        drawn after a transaction starts) waits for a later round."""
        pruned = 0
        async with self._connection() as conn:
            while True:
                cur = await conn.execute(_PRUNE_FEED, {"secs": older_than_s, "batch": batch})
                pruned += cur.rowcount
                if cur.rowcount < batch:
                    return pruned

    async def replication(self) -> list[dict[str, Any]]:
        """Each replica's lag as the primary sees it (application_name = region id)."""
        async with self._connection() as conn:
            cur = await conn.execute(
                "select application_name, state,"
                " coalesce(extract(epoch from replay_lag) * 1000, 0)::float8,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint"
                " from pg_stat_replication"
            )
            return [
                {"region": r[0], "state": r[1], "replay_lag_ms": r[2], "behind_bytes": r[3]}
                for r in await cur.fetchall()
            ]


def _first_line(exc: psycopg.DataError) -> str:
    """The driver's message without its context lines (which may quote the statement)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


async def _wal_position(conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken:
    cur = await conn.execute("select pg_current_wal_lsn()::text")
    row = await cur.fetchone()
    assert row is not None
    return ConsistencyToken.from_pg_lsn(row[0])
