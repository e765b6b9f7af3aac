"""The replay clock's naps: 10 ms while anyone listens on a socket, else the unheard nap while
the replica moves or a write was just forwarded, the quiet nap after a second of neither, and
back at once when this hub forwards a write. (Polling
itself runs against real Postgres in every integration test; here the positions are fed by
hand, so the decision is tested without a clock on the wall to race.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mbwire import ConsistencyToken
from regional.replica import ReplayClock
from regional.replica.clock import QUIET_AFTER_S


class Replica:
    """Answers the clock's position statement with (replayed, received, lag ms, streaming)."""

    def __init__(self) -> None:
        self.replayed = self.received = 0x1000

    async def execute(self, sql: str) -> Any:
        row = (f"0/{self.replayed:X}", f"0/{self.received:X}", 0.0, True)

        class Cursor:
            async def fetchone(self) -> tuple[Any, ...]:
                return row

        return Cursor()


def quiet_for(clock: ReplayClock, seconds: float) -> None:
    clock.moved_at = time.monotonic() - seconds


async def test_the_clock_naps_longer_only_after_a_quiet_spell() -> None:
    clock = ReplayClock("postgresql://unused", idle_s=0.01, quiet_s=0.05)
    assert clock.nap() == 0.01  # just started: as if it had just moved
    quiet_for(clock, QUIET_AFTER_S / 2)
    assert clock.nap() == 0.01
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    assert clock.nap() == 0.05


async def test_a_move_of_the_replica_or_wal_on_its_way_ends_the_quiet() -> None:
    replica, clock = Replica(), ReplayClock("postgresql://unused", idle_s=0.01, quiet_s=0.05)
    await clock._poll(replica)  # type: ignore[arg-type]
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    await clock._poll(replica)  # type: ignore[arg-type]
    assert clock.nap() == 0.05  # polled, nothing moved: still quiet
    replica.received += 0x100   # received, not replayed yet: a change is coming
    await clock._poll(replica)  # type: ignore[arg-type]
    assert clock.nap() == 0.01
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    replica.replayed = replica.received
    await clock._poll(replica)  # type: ignore[arg-type]
    assert clock.nap() == 0.01 and clock.position == replica.replayed


async def test_a_forwarded_write_wakes_a_quiet_clock_at_once_and_a_busy_one_not_at_all() -> None:
    clock = ReplayClock("postgresql://unused", idle_s=0.01, quiet_s=0.05)
    napping = asyncio.create_task(clock._nap(30.0))
    await asyncio.sleep(0.01)
    clock.expect_change()
    await asyncio.sleep(0.01)
    assert not napping.done()  # polling every 10 ms anyway: no extra poll per write
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    assert clock.nap() == 0.05  # now napping the quiet nap
    clock.expect_change()
    await asyncio.wait_for(napping, 1.0)  # cut short: the clock polls at once
    assert clock.nap() == 0.01


def test_a_quiet_nap_below_the_idle_one_never_makes_the_clock_faster() -> None:
    clock = ReplayClock("postgresql://unused", idle_s=0.05, quiet_s=0.0)  # the index service's
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    assert clock.nap() == 0.05


def test_a_clock_never_naps_longer_while_a_socket_listens() -> None:
    clock = ReplayClock("postgresql://unused", idle_s=0.01, quiet_s=0.05)
    sockets: set[str] = {"a subscriber"}
    clock.listening = lambda: bool(sockets)
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    assert clock.nap() == 0.01
    sockets.clear()
    assert clock.nap() == 0.05


def test_while_nobody_listens_a_moving_replica_is_polled_at_the_unheard_nap() -> None:
    clock = ReplayClock("postgresql://unused", idle_s=0.01, unheard_s=0.025, quiet_s=0.05)
    sockets: set[str] = set()
    clock.listening = lambda: bool(sockets)
    assert clock.nap() == 0.025 and not clock.quiet  # just moved, nobody listens
    sockets.add("a subscriber")
    assert clock.nap() == 0.01  # a socket opened: no message waits on the longer nap
    sockets.clear()
    quiet_for(clock, QUIET_AFTER_S + 0.1)
    assert clock.nap() == 0.05 and clock.quiet
    # the quiet nap is never shorter than the unheard one
    slow = ReplayClock("postgresql://unused", idle_s=0.01, unheard_s=0.06, quiet_s=0.05)
    quiet_for(slow, QUIET_AFTER_S + 0.1)
    assert slow.nap() == 0.06


async def test_a_reader_waiting_for_its_token_cuts_the_nap_short() -> None:
    replica, clock = Replica(), ReplayClock("postgresql://unused", unheard_s=0.025)
    await clock._poll(replica)  # type: ignore[arg-type]
    napping = asyncio.create_task(clock._nap(30.0))
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(
        clock.wait_for(ConsistencyToken(replica.replayed + 0x10), 5.0))
    await asyncio.wait_for(napping, 1.0)  # the reader woke the clock: it polls now
    replica.replayed += 0x10
    await clock._poll(replica)  # type: ignore[arg-type]
    await asyncio.wait_for(waiting, 1.0)
