"""The replay clock: how far the region's replica has replayed, and waiting for a token.

One task (``ReplayClock.run``) polls ``pg_last_wal_replay_lsn()`` (fast while a read waits for its
token, slower when idle, slower still after a quiet spell while no socket listens) and wakes
whoever waits: readers holding a consistency token, and the change-feed follower. ``settle``
refuses a token no write has made (400) rather than wait for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from mbwire import BadRequest, ConsistencyToken, ReplicaBehind, Unavailable
from regional.replica.pool import INSTANCE_SQL, POSITION_SQL

# Most polls read only the two positions; the WAL receiver's row and the replay timestamp
# (whether it streams, its lag: health figures) at most every ``FULL_EVERY_S``, as building
# that row costs the server more than the rest of the poll.
LEAN_SQL = """
select case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
            else pg_current_wal_lsn() end::text,
       case when pg_is_in_recovery() then pg_last_wal_receive_lsn()
            else pg_current_wal_lsn() end::text
"""
FULL_EVERY_S = 0.1

log = logging.getLogger("memorybank.replica")

# The clock polls every 10 ms at most when idle; silence longer than this means the replica (or
# the clock's connection to it) hangs, and every second of it is a second the answers may miss.
SILENT_S = 0.5


# After this long without the replica moving (and no write forwarded by this hub), while no
# realtime or Yjs socket is open on this worker, the clock naps ``quiet_s`` instead of
# ``idle_s``: an idle hub stops asking its replica 100 times a second. What it costs: the first
# change after the quiet spell that this hub did not forward itself (another region's write)
# evicts this worker's caches up to ``quiet_s`` later; nobody listening means no message is
# late. A reader holding a token never waits on it (it wakes the clock).
QUIET_AFTER_S = 1.0
# While the replica moves but nobody on the worker listens, the clock naps ``unheard_s`` (when
# given; the hubs' HUB_CLOCK_UNHEARD_MS): it polls for the caches' evictions alone then, which a
# token-less read may see late anyway, and a reader holding a token wakes it.


# How long a token may simply be waited for before the hub asks whether it exists at all: long
# enough that a token from a write in another region is usually replayed by then (no call to
# central on the read-your-writes path), short enough that a made-up token is refused at once.
ASK_AFTER_S = 0.05


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ReplayClock:
    def __init__(
        self, url: str, *, idle_s: float = 0.01, busy_s: float = 0.001, quiet_s: float = 0.0,
        unheard_s: float = 0.0,
        primary: Callable[[], Awaitable[ConsistencyToken]] | None = None,
    ) -> None:
        """``idle_s``: the nap between polls while nobody waits; ``busy_s`` while a reader
        waits for a token; ``unheard_s``: the nap while nobody listens; ``quiet_s``: the nap
        after ``QUIET_AFTER_S`` without a move while nobody listens (either no longer than the
        nap before it means never slower)."""
        self._url = url
        self._idle_s, self._busy_s = idle_s, busy_s
        self._unheard_s = max(idle_s, unheard_s)
        self._quiet_s = max(self._unheard_s, quiet_s)
        self.moved_at = time.monotonic()  # when the replica last moved, or a write was sent
        self._quiet = False               # napping ``quiet_s`` now
        # Whether anyone on this worker listens for changes (realtime or Yjs sockets open):
        # then the clock never naps longer, so no message waits on it.
        self.listening: Callable[[], bool] | None = None
        self.position = 0
        self.received = 0  # WAL the replica has received, replayed or not
        # Where the primary was when last asked: tokens up to it exist, so asking again for
        # them would tell nothing new.
        self.primary_known = 0
        self._primary = primary
        self._asking = asyncio.Lock()
        self._lag_ms = 0.0     # as of the last poll, while streaming
        self.checked_at = 0.0  # monotonic time of the last successful poll
        self._full_at = 0.0    # and of the last that read the receiver's state
        # Whether the replica's WAL receiver streamed from the primary at the last poll, and
        # when it last did: a disconnected replica replays nothing new, so "received ==
        # replayed" says nothing about what it misses.
        self.streaming = False
        self.streamed_at = time.monotonic()
        self._advanced = asyncio.Event()
        # The nap in progress (``_nap``): done early when a reader starts waiting or a write is
        # acknowledged after a quiet spell, so the clock polls now, not after the nap.
        self._napping: asyncio.Future[None] | None = None
        self._waiters = 0
        # The server instance the clock polls (its postmaster's start time). A new instance (a
        # restarted or re-cloned replica) may show less than the old one had replayed: the
        # position starts over from its first poll, never kept from the old instance.
        self.instance = ""

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
                    cur = await conn.execute(INSTANCE_SQL)
                    row = await cur.fetchone()
                    instance = str(row[0]) if row else ""
                    if instance != self.instance:
                        self.instance = ""  # no floor from the clock until its first poll
                        self.position = 0
                        await self._poll(conn)
                        self.instance = instance
                    while True:
                        await self._poll(conn)
                        if self._waiters:
                            await asyncio.sleep(self._busy_s)
                            continue
                        await self._nap(self.nap())
                        self._quiet = False
            except (psycopg.Error, OSError) as exc:
                log.warning("replay clock lost the replica: %s", exc)
                await asyncio.sleep(0.5)

    async def _nap(self, seconds: float) -> None:
        """Sleeps ``seconds``, or less when ``_wake`` is called meanwhile. A future and a timer,
        not ``asyncio.wait_for`` on an event, which starts a task per nap: the clock naps up to
        100 times a second, and a nap cost ~110 µs of CPU that way against ~60 (a loop of
        2,000 on uvloop)."""
        loop = asyncio.get_running_loop()
        self._napping = napping = loop.create_future()
        timer = loop.call_later(seconds, _done, napping)
        try:
            await napping
        finally:
            timer.cancel()
            self._napping = None

    def _wake(self) -> None:
        if self._napping is not None:
            _done(self._napping)

    async def _poll(self, conn: psycopg.AsyncConnection[Any]) -> None:
        full = time.monotonic() - self._full_at >= FULL_EVERY_S
        cur = await conn.execute(POSITION_SQL if full else LEAN_SQL)
        row = await cur.fetchone()
        assert row is not None
        replayed = ConsistencyToken.from_pg_lsn(row[0]).lsn if row[0] else 0
        received = ConsistencyToken.from_pg_lsn(row[1]).lsn if row[1] else replayed
        self.received = max(self.received, received)
        self.checked_at = time.monotonic()
        if full:
            self._full_at = self.checked_at
            self.streaming = bool(row[3])
        if self.streaming:
            # Idle replicas have an old last-replay timestamp but no lag: lag exists only
            # while something received is not yet replayed.
            if full:
                self._lag_ms = float(row[2]) if received > replayed else 0.0
            elif received <= replayed:
                self._lag_ms = 0.0
            self.streamed_at = self.checked_at
        if replayed > self.position or received > replayed:
            self.moved_at = self.checked_at
        if replayed > self.position:
            self.position = replayed
            self._advanced.set()
            self._advanced = asyncio.Event()

    @property
    def quiet(self) -> bool:
        """Napping the quiet nap now (a gauge: how much of the time a hub's replica is idle)."""
        return self._quiet

    def nap(self) -> float:
        """How long to nap before the next poll while no reader waits: ``idle_s`` while a socket
        on the worker listens; else ``quiet_s`` after ``QUIET_AFTER_S`` without a move or a
        write forwarded, and ``unheard_s`` before that."""
        if self.listening is not None and self.listening():
            self._quiet = False
            return self._idle_s
        self._quiet = time.monotonic() - self.moved_at >= QUIET_AFTER_S
        return self._quiet_s if self._quiet else self._unheard_s

    def expect_change(self) -> None:
        """A write this hub forwarded was acknowledged: its change is on the way, so the clock
        polls at ``idle_s`` again (at once, when it was napping after a quiet spell)."""
        self.moved_at = time.monotonic()
        if self._quiet:
            self._wake()

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
        self._wake()
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
