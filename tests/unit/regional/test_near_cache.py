"""The worker's near cache never answers a view older than the token it answers at, whatever
order commits, the feed tail's evictions and slow readers' stores come in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mbwire import ConsistencyToken
from regional.cache import CachedTwin
from regional.near import NearCache, cost

TWINS = ["a", "b", "c"]

op = st.one_of(
    st.tuples(st.just("commit"), st.sampled_from(TWINS)),
    st.tuples(st.just("tail"), st.integers(1, 4)),
    st.tuples(st.just("read"), st.sampled_from(TWINS)),
    st.tuples(st.just("store"), st.integers(0, 5)),
    st.tuples(st.just("get"), st.sampled_from(TWINS), st.booleans()),
)


def view(version: int) -> CachedTwin:
    return CachedTwin(version, "owner", {"v": version}, {}, "")


@given(st.lists(op, max_size=80))
def test_an_answer_is_the_twins_state_at_the_position_it_answers_at(ops: list[tuple]) -> None:
    near = NearCache(max_bytes=8 * cost(view(10**6)))  # every view small enough to keep
    commits: list[tuple[int, str]] = []  # (position, twin): position = index + 1
    tail = 0                            # position the tail has handed on up to
    reading: list[tuple[str, int, int]] = []   # (twin, version read, position read at)

    def truth(twin: str, position: int) -> int:
        return sum(1 for p, t in commits if t == twin and p <= position)

    for step in ops:
        head = len(commits)
        if step[0] == "commit":
            commits.append((head + 1, step[1]))
        elif step[0] == "tail":
            upto = min(head, tail + step[1])
            changed = [("twin", t) for p, t in commits if tail < p <= upto]
            near.evict(changed, ConsistencyToken(upto))
            tail = upto
        elif step[0] == "read":  # a reader reads the replica now, stores later
            reading.append((step[1], truth(step[1], head), head))
        elif step[0] == "store" and reading:
            twin, version, at = reading.pop(step[1] % len(reading))
            near.put(twin, view(version), ConsistencyToken(at))
        elif step[0] == "get":
            token = ConsistencyToken(head) if step[2] else None
            got = near.get(step[1], token)
            if got is not None:
                entry, answered = got
                assert answered.lsn <= head
                assert token is None or answered >= token
                assert entry.version == truth(step[1], answered.lsn)
        assert near.used <= near.max_bytes


BOUND = 8_000
sized = st.one_of(
    st.tuples(st.just("put"), st.sampled_from("abcdefgh"), st.integers(0, 2 * BOUND // 8)),
    st.tuples(st.just("get"), st.sampled_from("abcdefgh")),
    st.tuples(st.just("evict"), st.sampled_from("abcdefgh")),
)


@given(st.lists(sized, max_size=60))
def test_the_views_kept_never_count_more_than_the_bound(ops: list[tuple]) -> None:
    near = NearCache(max_bytes=BOUND)
    near.evict([], ConsistencyToken(1))
    for step in ops:
        if step[0] == "put":
            fits = near.put(step[1], padded(step[2]), ConsistencyToken(1))
            assert fits == (near.get(step[1], None) is not None)
        elif step[0] == "get":
            near.get(step[1], None)
        else:
            near.evict([("twin", step[1])], None)
            assert near.get(step[1], None) is None
        kept = [near.get(t, None) for t in "abcdefgh"]
        counted = sum(cost(k[0]) for k in kept if k)
        assert near.used == counted <= BOUND


def padded(n: int) -> CachedTwin:
    return CachedTwin(1, "owner", {"pad": "x" * n}, {}, "")


def test_the_least_recently_used_goes_first_and_an_oversized_view_is_not_kept() -> None:
    size = cost(padded(10))
    near = NearCache(max_bytes=8 * size)  # eight such views, each an eighth of the bound
    near.evict([], ConsistencyToken(1))
    for twin in "abcdefgh":
        assert near.put(twin, padded(10), ConsistencyToken(1))
    near.get("a", None)                    # a is now the most recently used
    assert near.put("i", padded(10), ConsistencyToken(1))
    assert near.get("b", None) is None and near.get("a", None) is not None
    assert not near.put("j", padded(11), ConsistencyToken(1))  # over an eighth
    assert len(near) == 8 and near.get("j", None) is None


def test_nothing_is_kept_or_served_before_the_tail_has_handed_on_a_batch() -> None:
    near = NearCache()
    assert not near.put("a", view(1), ConsistencyToken(5))
    near.evict([], ConsistencyToken(5))
    assert near.put("a", view(1), ConsistencyToken(5))
    assert near.get("a", ConsistencyToken(5)) == (view(1), ConsistencyToken(5))
    assert near.get("a", ConsistencyToken(6)) is None  # past what it can vouch for
    near.clear()
    assert near.get("a", None) is None


def test_a_view_read_before_the_mark_is_not_kept() -> None:
    # The tail evicted a change at 7 before a reader that read at 6 came back to store.
    near = NearCache()
    near.evict([("twin", "a")], ConsistencyToken(7))
    assert not near.put("a", view(1), ConsistencyToken(6))
    assert near.get("a", None) is None


def test_a_grant_change_evicts_and_other_kinds_do_not() -> None:
    near = NearCache()
    near.evict([], ConsistencyToken(1))
    near.put("a", view(1), ConsistencyToken(1))
    near.evict([("event", "a"), ("knowledge", "a")], ConsistencyToken(2))
    assert near.get("a", ConsistencyToken(2)) == (view(1), ConsistencyToken(2))
    near.evict([("grant", "a")], ConsistencyToken(3))
    assert near.get("a", None) is None


def test_an_evicted_or_cleared_view_gives_its_bytes_back() -> None:
    near = NearCache()
    near.evict([], ConsistencyToken(1))
    near.put("a", view(1), ConsistencyToken(1))
    near.put("b", view(1), ConsistencyToken(1))
    near.evict([("twin", "a")], ConsistencyToken(2))
    assert near.used == cost(view(1))
    near.clear()
    assert near.used == 0 and len(near) == 0
