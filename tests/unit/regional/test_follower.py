"""The change-feed follower's bookkeeping, with the replica and the cache as fakes: which
position invalidates (at or after every change it read), which one becomes the mark (before the
read, and only once everything up to it is processed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mbwire import ConsistencyToken as T
from regional.follower import Follower, LostState
from regional.realtime.feed import RealtimeFeed, Row
from regional.replica.feed import FeedStep

Rows = list[tuple[int, str, str]]
Poll = tuple[int, Rows, int] | tuple[int, Rows, int, list[tuple[str, str]]]


class FakeReplica:
    """Answers each read with the next poll: (before, numbered rows, after[, pending])."""

    def __init__(self, polls: list[Poll]) -> None:
        self.polls, self.asked = polls, []  # type: ignore[var-annotated]

    async def feed_since(self, cursor: int, limit: int, upto: int | None = None,
                         fresh: bool = False) -> FeedStep:
        self.asked.append(cursor if upto is None else (cursor, upto))
        poll = self.polls.pop(0)
        before, rows, after = poll[:3]
        pending = poll[3] if len(poll) > 3 else []
        more = len(rows) >= limit
        return FeedStep(T(before), rows, pending, T(after), more=more,
                        complete=not more and len(pending) < limit and upto is None)


class FakeClock:
    position = 10_000

    async def advanced(self) -> None:
        raise AssertionError("the follower waited although the replica had moved")


class FakeCache:
    def __init__(self) -> None:
        self.calls: list[tuple[set[str], T, int, T | None]] = []
        self.kept = True   # False: Redis restarted empty since the follower set it up

    async def invalidate(self, twins: set[str], inv: T, cursor: int, mark: T | None) -> bool:
        self.calls.append((twins, inv, cursor, mark))
        return self.kept


def follower(polls: list[Poll], batch: int = 1000) -> Follower:
    f = Follower(FakeReplica(polls), FakeClock(), FakeCache())  # type: ignore[arg-type]
    f.batch = batch
    return f


async def test_changes_invalidate_at_the_later_position_and_mark_the_earlier() -> None:
    f = follower([(100, [(1, "twin", "a"), (2, "grant", "b"), (3, "other", "c")], 120)])
    seen: list[Any] = []

    async def listener(changes: Rows, at: T) -> None:
        seen.append((changes, at))

    f.listeners.append(listener)
    await f.step()
    cache: FakeCache = f.cache  # type: ignore[assignment]
    assert cache.calls == [({"a", "b"}, T(120), 3, T(100))]
    assert (f.cursor, f.mark) == (3, T(100))
    assert seen == [([(1, "twin", "a"), (2, "grant", "b"), (3, "other", "c")], T(120))]


async def test_a_full_batch_does_not_move_the_mark_until_the_rest_is_read() -> None:
    f = follower([(100, [(1, "twin", "a"), (2, "twin", "b")], 110),
                  (115, [(3, "twin", "c")], 130)], batch=2)
    await f.step()
    cache: FakeCache = f.cache  # type: ignore[assignment]
    replica: FakeReplica = f.replica  # type: ignore[assignment]
    assert replica.asked == [0, 2]
    assert cache.calls == [({"a", "b"}, T(110), 2, None), ({"c"}, T(130), 3, T(115))]
    assert f.mark == T(115)


async def test_rows_not_numbered_yet_are_invalidated_and_the_mark_moves_without_them() -> None:
    # Committed at or before 100 but not numbered by central's sequencer yet: evicted now, the
    # cursor stays (they come again numbered), listeners hear of them only then.
    f = follower([(100, [(1, "twin", "a")], 120, [("twin", "b"), ("knowledge", "k")])])
    seen: list[Any] = []

    async def listener(changes: Rows, at: T) -> None:
        seen.append(changes)

    f.listeners.append(listener)
    await f.step()
    cache: FakeCache = f.cache  # type: ignore[assignment]
    assert cache.calls == [({"a", "b"}, T(120), 1, T(100))]
    assert (f.cursor, f.mark) == (1, T(100))
    assert seen == [[(1, "twin", "a")]]


async def test_a_full_pending_list_holds_the_mark_without_reading_again() -> None:
    f = follower([(100, [], 120, [("twin", "a"), ("twin", "b")])], batch=2)
    f.mark = T(50)
    await f.step()
    cache: FakeCache = f.cache  # type: ignore[assignment]
    replica: FakeReplica = f.replica  # type: ignore[assignment]
    assert replica.asked == [0]  # no second read of the same rows: it waits for the replica
    assert cache.calls == [({"a", "b"}, T(120), 0, None)]
    assert f.mark == T(50)


async def test_a_quiet_step_still_advances_the_mark_once() -> None:
    f = follower([(200, [], 200), (200, [], 200)])
    f.cursor, f.mark = 7, T(150)
    await f.step()
    cache: FakeCache = f.cache  # type: ignore[assignment]
    assert cache.calls == [(set(), T(200), 7, T(200))]
    await f.step()  # nothing new and no movement: no Redis write at all
    assert len(cache.calls) == 1


async def test_a_redis_that_lost_the_followers_state_stops_the_step() -> None:
    f = follower([(100, [(1, "twin", "a")], 120)])
    f.cache.kept = False  # type: ignore[attr-defined]
    with pytest.raises(LostState):
        await f.step()
    assert f.mark == T(0)   # nothing is marked processed in a Redis that lost the rest


class QuietReplica:
    keys = None


def riding(cursor: int) -> tuple[Follower, RealtimeFeed]:
    feed = RealtimeFeed(QuietReplica(), FakeClock())  # type: ignore[arg-type]
    feed.cursor = cursor
    f = follower([])
    f.cursor = cursor
    return f, feed


async def hand(feed: RealtimeFeed, before: int, rows: Rows, after: int) -> None:
    """One complete step of the tail, as ``RealtimeFeed.step`` hands it on."""
    await feed.hand_on([Row(seq, kind, key, 1) for seq, kind, key in rows], T(after), T(before),
                       [], FeedStep(T(before), rows, [], T(after), more=False, complete=True))


async def test_a_follower_in_step_with_the_tail_takes_its_reads_instead_of_its_own() -> None:
    f, feed = riding(7)
    heard: list[list[int]] = []

    async def sink(rows: list[Row], at: T) -> None:
        heard.append([r.seq for r in rows])

    feed.sink = sink
    ride = asyncio.create_task(f.ride(feed))
    await asyncio.sleep(0)
    await hand(feed, 100, [(8, "twin", "a"), (9, "grant", "b")], 120)
    cache: FakeCache = f.cache  # type: ignore[assignment]
    assert cache.calls == [({"a", "b"}, T(120), 9, T(100))]  # before the subscribers heard
    assert (f.cursor, f.mark, f.rides, heard) == (9, T(100), 1, [[8, 9]])
    replica: FakeReplica = f.replica  # type: ignore[assignment]
    assert replica.asked == []  # no read of its own
    ride.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ride
    assert feed.rider is None  # a follower that stopped (its lease lost) is not called again


async def test_a_step_the_follower_cannot_take_detaches_it_and_the_tail_goes_on() -> None:
    f, feed = riding(3)
    heard: list[int] = []

    async def sink(rows: list[Row], at: T) -> None:
        heard.extend(r.seq for r in rows)

    feed.sink = sink
    f.cache.kept = False  # type: ignore[attr-defined]
    ride = asyncio.create_task(f.ride(feed))
    await asyncio.sleep(0)
    await hand(feed, 40, [(4, "twin", "a")], 50)
    with pytest.raises(LostState):
        await ride
    assert feed.rider is None and f.mark == T(0)
    f.cache.kept = True  # type: ignore[attr-defined]
    await hand(feed, 55, [(5, "twin", "b")], 60)
    assert heard == [4, 5]  # subscribers heard of both; the follower of neither after it fell
    cache: FakeCache = f.cache  # type: ignore[assignment]
    assert len(cache.calls) == 1


async def test_catching_up_reads_to_the_tail_and_meets_it_past_a_gap_in_seq() -> None:
    # The tail is at seq 9, read by position 300; rows 5 and 6 are all there is up to it (7-9
    # were never drawn, or went with a rolled-back commit).
    f = follower([(310, [(5, "twin", "a"), (6, "twin", "b")], 320)])
    f.cursor, f.mark = 4, T(100)
    assert await f.catch_up(9, T(300))
    replica: FakeReplica = f.replica  # type: ignore[assignment]
    cache: FakeCache = f.cache  # type: ignore[assignment]
    assert replica.asked == [(4, 9)]
    assert cache.calls == [({"a", "b"}, T(320), 6, None)]  # bounded: it covers no position
    assert (f.cursor, f.mark) == (9, T(100))


async def test_a_replica_behind_what_the_tail_read_does_not_move_the_cursor_past_it() -> None:
    # Replayed only to 250 when read (restarted behind?): rows 7-9 may be there but unseen.
    f = follower([(250, [(5, "twin", "a")], 260), (250, [], 260)])
    f.cursor = 4
    assert await f.catch_up(9, T(300))  # it moved to the row it read
    assert f.cursor == 5
    assert not await f.catch_up(9, T(300))  # nothing new and no jump: it waits instead
    assert f.cursor == 5
