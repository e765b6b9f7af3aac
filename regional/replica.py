"""The region's streaming replica: reads, and the replay clock that says how far it has come.

One task polls ``pg_last_wal_replay_lsn()`` (fast while a read waits for its token, slower when
idle) and wakes whoever waits: readers holding a consistency token, and the change-feed follower.
Driver errors are translated here; handlers never see psycopg."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from mbwire import BadRequest, ConsistencyToken, ReplicaBehind, Unavailable

log = logging.getLogger("memorybank.replica")

_POSITION_SQL = """
select case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
            else pg_current_wal_lsn() end::text,
       case when pg_is_in_recovery() then pg_last_wal_receive_lsn()
            else pg_current_wal_lsn() end::text,
       coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000, 0)::float8,
       not pg_is_in_recovery()
         or coalesce((select status = 'streaming' from pg_stat_wal_receiver), false)
"""
# The clock polls every 10 ms at most when idle; silence longer than this means the replica (or
# the clock's connection to it) hangs, and every second of it is a second the answers may miss.
SILENT_S = 0.5


# A twin's grants as one JSON object {sub: access}, read with the twin in one statement.
_GRANTS = (
    "coalesce((select jsonb_object_agg(g.sub, g.access) from twin_grants g"
    " where g.twin_id = t.twin_id), '{}'::jsonb)"
)
_WHERE_TWIN = " from twins t where t.twin_id = %s"


@dataclass(frozen=True, slots=True)
class TwinRow:
    twin_id: str
    owner_sub: str
    version: int
    profile: dict[str, Any]
    grants: dict[str, str]


async def twin_on(conn: psycopg.AsyncConnection[Any], twin_id: str) -> TwinRow | None:
    """The twin on ``conn`` (a batch reads many on one snapshot's connection)."""
    cur = await conn.execute(
        "select t.owner_sub, t.version, t.profile, " + _GRANTS + _WHERE_TWIN, (twin_id,)
    )
    row = await cur.fetchone()
    return None if row is None else TwinRow(twin_id, row[0], row[1], row[2], row[3])


# How long a token may simply be waited for before the hub asks whether it exists at all: long
# enough that a token from a write in another region is usually replayed by then (no call to
# central on the read-your-writes path), short enough that a made-up token is refused at once.
ASK_AFTER_S = 0.05


class ReplayClock:
    def __init__(
        self, url: str, *, idle_s: float = 0.01, busy_s: float = 0.001,
        primary: Callable[[], Awaitable[ConsistencyToken]] | None = None,
    ) -> None:
        self._url = url
        self._idle_s, self._busy_s = idle_s, busy_s
        self.position = 0
        self.received = 0  # WAL the replica has received, replayed or not
        # Where the primary was when last asked: tokens up to it exist, so asking again for
        # them would tell nothing new.
        self.primary_known = 0
        self._primary = primary
        self._asking = asyncio.Lock()
        self._lag_ms = 0.0     # as of the last poll, while streaming
        self.checked_at = 0.0  # monotonic time of the last successful poll
        # Whether the replica's WAL receiver streamed from the primary at the last poll, and
        # when it last did: a disconnected replica replays nothing new, so "received ==
        # replayed" says nothing about what it misses.
        self.streaming = False
        self.streamed_at = time.monotonic()
        self._advanced = asyncio.Event()
        self._wake = asyncio.Event()  # a reader started waiting: poll now, not after the nap
        self._waiters = 0

    @property
    def healthy(self) -> bool:
        return time.monotonic() - self.checked_at < 2.0

    @property
    def lag_ms(self) -> float:
        """How far behind the primary this replica's answers may be: the replay delay while it
        streams; while it is disconnected (or the clock hears nothing from it), that delay plus
        the time since it last streamed (or last answered), which grows until it is back."""
        now = time.monotonic()
        since = now - self.checked_at if now - self.checked_at > SILENT_S else 0.0
        if not self.streaming:
            since = max(since, now - self.streamed_at)
        return self._lag_ms + since * 1000

    async def run(self) -> None:
        """Polls until cancelled, reconnecting after errors."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=5
                ) as conn:
                    while True:
                        await self._poll(conn)
                        if self._waiters:
                            await asyncio.sleep(self._busy_s)
                            continue
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self._idle_s)
            except (psycopg.Error, OSError) as exc:
                log.warning("replay clock lost the replica: %s", exc)
                await asyncio.sleep(0.5)

    async def _poll(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(_POSITION_SQL)
        row = await cur.fetchone()
        assert row is not None
        replayed = ConsistencyToken.from_pg_lsn(row[0]).lsn if row[0] else 0
        received = ConsistencyToken.from_pg_lsn(row[1]).lsn if row[1] else replayed
        # Idle replicas have an old last-replay timestamp but no lag: lag exists only while
        # something received is not yet replayed.
        self.received = max(self.received, received)
        self.checked_at = time.monotonic()
        self.streaming = bool(row[3])
        if self.streaming:
            self._lag_ms = float(row[2]) if received > replayed else 0.0
            self.streamed_at = self.checked_at
        if replayed > self.position:
            self.position = replayed
            self._advanced.set()
            self._advanced = asyncio.Event()

    async def advanced(self) -> None:
        await self._advanced.wait()

    async def settle(self, token: ConsistencyToken, budget_s: float) -> None:
        """Check, then wait: BadRequest at once for a token beyond the primary's current position
        (no write has it, so waiting could only time out), else ``wait_for``. When central cannot
        be asked, the token is waited for as if it were real."""
        if self.position >= token.lsn:
            return
        try:
            await self.wait_for(token, min(ASK_AFTER_S, budget_s))
            return
        except ReplicaBehind:
            if budget_s <= ASK_AFTER_S:
                raise
        if token.lsn > max(self.received, self.primary_known) and self._primary is not None:
            async with self._asking:  # one question at a time; the answer serves every waiter
                if token.lsn > max(self.received, self.primary_known):
                    try:
                        primary = (await self._primary()).lsn
                    except Unavailable as exc:
                        log.warning("could not ask central where the primary is: %s", exc)
                    else:
                        self.primary_known = max(self.primary_known, primary)
                        if token.lsn > primary:
                            raise BadRequest(
                                f"X-Consistency-Token {token} is ahead of every write (the "
                                f"primary is at {ConsistencyToken(primary)}); send a token a "
                                "response gave you"
                            )
        await self.wait_for(token, budget_s - ASK_AFTER_S)

    async def wait_for(self, token: ConsistencyToken, budget_s: float) -> None:
        """Returns once the replica has replayed ``token``; ReplicaBehind after ``budget_s``."""
        if self.position >= token.lsn:
            return
        deadline = time.monotonic() + budget_s
        self._waiters += 1
        self._wake.set()
        try:
            while self.position < token.lsn:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReplicaBehind(
                        f"this region's replica has not replayed {token} within "
                        f"{int(budget_s * 1000)} ms (it is at {ConsistencyToken(self.position)})",
                        retry_after=1,
                    )
                try:
                    await asyncio.wait_for(self._advanced.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            self._waiters -= 1


class Replica:
    def __init__(self, url: str, *, max_size: int = 8, pool_timeout_s: float = 0.8) -> None:
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
        """One repeatable-read transaction, and the replay position read first in it: every
        statement inside agrees with the others, and the answer reflects at least that position."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute("set transaction isolation level repeatable read")
            yield conn, await self.position_on(conn)

    async def twin(self, twin_id: str) -> tuple[TwinRow | None, ConsistencyToken]:
        """The twin as the replica has it, and the replay position the answer reflects at least.
        The position is read by its own statement before the twin's (whose snapshot is taken
        after it, so it shows at least that position); both are sent in one pipeline, one round
        trip instead of two."""
        async with self.connection() as conn:
            async with conn.pipeline() as pipeline:
                position = await conn.execute(_POSITION_SQL)
                found = await conn.execute(
                    "select t.owner_sub, t.version, t.profile, " + _GRANTS + _WHERE_TWIN,
                    (twin_id,),
                )
                await pipeline.sync()
                at, row = await position.fetchone(), await found.fetchone()
        assert at is not None
        token = ConsistencyToken.from_pg_lsn(at[0])
        return (None if row is None else TwinRow(twin_id, row[0], row[1], row[2], row[3])), token

    async def twin_state(self, twin_id: str) -> tuple[bytes, TwinRow] | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                "select t.state, t.owner_sub, t.version, " + _GRANTS + _WHERE_TWIN,
                (twin_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return bytes(row[0]), TwinRow(twin_id, row[1], row[2], {}, row[3])

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

    @staticmethod
    async def position_on(conn: psycopg.AsyncConnection[Any]) -> ConsistencyToken:
        """The replay position, read on ``conn`` (so it orders with that connection's reads)."""
        cur = await conn.execute(_POSITION_SQL)
        row = await cur.fetchone()
        assert row is not None
        return ConsistencyToken.from_pg_lsn(row[0])

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
