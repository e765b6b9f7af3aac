"""A twin's home shard: stable, spread, and read from the paths hubs forward."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from mbwire.placement import central_shard, twin_of_path

TWIN_IDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64)


@given(TWIN_IDS, st.integers(min_value=1, max_value=13))
def test_a_twin_has_one_home_in_range_for_any_shard_count(twin_id: str, shards: int) -> None:
    home = central_shard(twin_id, shards)
    assert 0 <= home < shards
    assert home == central_shard(twin_id, shards)  # the same in every hub, every call


def test_the_homes_are_pinned_so_a_release_never_moves_a_twin_silently() -> None:
    # CRC-32 of the UTF-8 id: changing the hash would move twins' homes (a reshard).
    assert [central_shard(f"twin-{i}", 2) for i in range(8)] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert [central_shard(f"twin-{i}", 3) for i in range(8)] == [0, 2, 1, 2, 1, 0, 0, 0]
    assert central_shard("anything", 1) == 0


def test_twins_spread_evenly_over_the_shards() -> None:
    homes = Counter(central_shard(f"twin-{i:05d}", 4) for i in range(20_000))
    assert set(homes) == {0, 1, 2, 3}
    assert max(homes.values()) / min(homes.values()) < 1.1


@given(TWIN_IDS.filter(lambda t: "/" not in t))
def test_the_twin_is_read_from_every_twin_path(twin_id: str) -> None:
    for tail in ("", "/updates", "/grants/bob", "/events"):
        assert twin_of_path(f"/v1/twins/{twin_id}{tail}") == twin_id


def test_paths_without_a_twin_have_no_home() -> None:
    for path in ("/v1/twins", "/v1/twins/", "/v1/events", "/v1/transactions",
                 "/v1/knowledge", "/internal/position"):
        assert twin_of_path(path) is None
