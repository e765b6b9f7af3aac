"""The realtime tail as the replay clock's passenger (``ReplayClock.passenger``): the clock's
poll carries the tail's read of the feed, the tail hands it on, and while it does the clock asks
for no other read (the same rows would come twice)."""

from __future__ import annotations

import asyncio
from typing import Any

from mbwire import ConsistencyToken
from regional.realtime.feed import RealtimeFeed, Row


class Clock:
    position, stirring = 0x40, True

    def __init__(self) -> None:
        self.passenger: Any = None

    async def advanced(self) -> None:
        raise AssertionError("a carried tail never waits for the clock to move")


class Near:
    def __init__(self) -> None:
        self.evicted: list[tuple[list[tuple[str, str]], ConsistencyToken | None]] = []

    def evict(self, changes: Any, upto: ConsistencyToken | None) -> None:
        self.evicted.append((list(changes), upto))


def carried_feed(cursor: int = 7, *, every_s: float = 0.0) -> tuple[RealtimeFeed, list[Row]]:
    clock = Clock()
    feed = RealtimeFeed(None, clock, batch=3, step_every_s=every_s)  # type: ignore[arg-type]
    clock.passenger, feed.cursor, feed.near = feed, cursor, Near()  # type: ignore[assignment]
    got: list[Row] = []

    async def sink(rows: list[Row], _: ConsistencyToken) -> None:
        got.extend(rows)

    feed.sink = sink
    return feed, got


async def test_a_carried_read_is_handed_on_and_covers_its_before() -> None:
    feed, got = carried_feed()
    assert feed.wanted() == 7
    feed.board(ConsistencyToken(0x30), [(8, "twin", "t1", 2), (None, "twin", "t2", 1)],
               ConsistencyToken(0x40))
    assert feed.wanted() is None  # boarded, not handed on yet: no second read of the same rows
    await asyncio.wait_for(feed.step(), 1)
    assert [r.seq for r in got] == [8] and feed.cursor == 8
    assert feed.covered == ConsistencyToken(0x30) and feed.token == ConsistencyToken(0x40)
    near: Any = feed.near
    assert near.evicted == [([("twin", "t1"), ("twin", "t2")], ConsistencyToken(0x30))]
    assert feed.wanted() == 8


async def test_a_read_with_nothing_new_does_not_wake_the_tail() -> None:
    feed, got = carried_feed()
    feed.covered = ConsistencyToken(0x30)
    feed.board(ConsistencyToken(0x30), [], ConsistencyToken(0x40))
    assert feed.wanted() == 7
    feed.board(ConsistencyToken(0x38), [], ConsistencyToken(0x40))  # the replica moved
    await asyncio.wait_for(feed.step(), 1)
    assert got == [] and feed.covered == ConsistencyToken(0x38)


async def test_a_full_carried_read_is_read_on_by_the_tail_itself() -> None:
    feed, got = carried_feed()
    reads = iter([[(11, "knowledge", "d", 1)]])
    cursors: list[int] = []

    async def tail() -> tuple[ConsistencyToken, list[Any], ConsistencyToken]:
        cursors.append(feed.cursor)
        assert feed.wanted() is None  # still busy: the clock carries nothing meanwhile
        return ConsistencyToken(0x38), next(reads), ConsistencyToken(0x48)

    feed.tail = tail  # type: ignore[method-assign]
    full = [(8, "twin", "a", 1), (9, "twin", "b", 1), (10, "twin", "c", 1)]
    feed.board(ConsistencyToken(0x30), full, ConsistencyToken(0x40))
    await asyncio.wait_for(feed.step(), 1)
    assert [r.seq for r in got] == [8, 9, 10, 11] and cursors == [10]
    # Only the read that was not full covers a position: the full one's before is not enough.
    assert feed.covered == ConsistencyToken(0x38)


async def test_the_tail_asks_for_a_read_at_most_once_per_step_interval() -> None:
    feed, _ = carried_feed(every_s=60.0)
    feed.board(ConsistencyToken(0x30), [(8, "twin", "t1", 2)], ConsistencyToken(0x40))
    await asyncio.wait_for(feed.step(), 1)
    assert feed.wanted() is None  # within a minute of a read that had rows


async def test_a_hand_on_that_fails_still_frees_the_tail_for_the_clocks_next_read() -> None:
    feed, _ = carried_feed()

    async def sink(rows: list[Row], _: ConsistencyToken) -> None:
        raise OSError("a sink failed")

    feed.sink = sink
    feed.board(ConsistencyToken(0x30), [(8, "twin", "t1", 2)], ConsistencyToken(0x40))
    try:
        await asyncio.wait_for(feed.step(), 1)
    except OSError:
        pass
    assert feed._carried is None and feed.wanted() is not None


async def test_a_quiet_replica_with_nothing_left_to_cover_is_polled_without_a_read() -> None:
    feed, _ = carried_feed()
    clock: Any = feed.clock
    clock.stirring, feed.covered = False, ConsistencyToken(0x40)
    assert feed.wanted() is None  # quiet, and covered up to where the clock stands
    clock.position = 0x48  # a lean poll saw it move: the next poll carries a read
    assert feed.wanted() == 7
    clock.position, clock.stirring = 0x40, True  # a write forwarded, or a socket listening
    assert feed.wanted() == 7
