"""Which central shard a hub sends a write to, and where it goes when that shard refuses."""

from __future__ import annotations

import time
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from mbwire.placement import central_shard
from regional.central_client import CentralClient

SHARDS = ["http://127.0.0.1:1", "http://127.0.0.1:2/", "http://127.0.0.1:3"]


def client() -> CentralClient:
    return CentralClient(",".join(SHARDS), "a-hop-secret-of-32-characters-xx")


def test_the_comma_list_is_the_shards_in_order() -> None:
    assert client().shards == ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    assert CentralClient("http://one", "a-hop-secret-of-32-characters-xx").shards == ("http://one",)


@given(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
       st.sampled_from(["", "/updates", "/grants", "/grants/bob", "/trajectory"]))
def test_a_twin_write_goes_home_first_then_to_every_other_shard(twin_id: str, tail: str) -> None:
    order = client()._order(f"/v1/twins/{twin_id}{tail}")
    assert order[0] == central_shard(twin_id, 3)
    assert sorted(order) == [0, 1, 2]


def test_other_writes_take_the_shards_in_turn() -> None:
    c = client()
    firsts = Counter(c._order(path)[0] for path in ["/v1/events", "/v1/transactions"] * 30)
    assert firsts == {0: 20, 1: 20, 2: 20}


def test_a_shard_that_refused_lately_is_tried_last_until_its_time_is_up() -> None:
    c = client()
    home = central_shard("ada", 3)
    c._down_until[home] = time.monotonic() + 60
    order = c._order("/v1/twins/ada")
    assert order[-1] == home and sorted(order) == [0, 1, 2]
    c._down_until[home] = time.monotonic() - 1
    assert c._order("/v1/twins/ada")[0] == home
