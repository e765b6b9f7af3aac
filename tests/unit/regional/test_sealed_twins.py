"""A twin's sealed values at the hub: the replica's rows open to the profile and state central
wrote (``regional.replica.twins``), a value moved to another twin, field or version does not
open, Redis holds the twin's view sealed (``regional.cache``), and a worker's feed tail forgets
an erased twin's key (``regional.realtime.feed``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crdt import TwinDoc, client_id_for, new_state
from mbwire import ConsistencyToken
from regional.cache import CachedTwin, TwinCache
from regional.realtime.feed import RealtimeFeed, Row
from regional.replica.twins import folded, folded_state
from sealing import Keyring, KeyStore, SealError, TwinKey

MARKER = "marker-7f3a9c"


@pytest.fixture
def keys(tmp_path: Path) -> Keyring:
    return Keyring(KeyStore(tmp_path / "keys"))


def stored(key: TwinKey) -> tuple[bytes, list[bytes], dict[str, Any]]:
    """A twin as central stores it at version 3 over a state compacted at 1: its sealed state
    and the sealed log (versions 2 and 3), and the profile at the head."""
    doc = TwinDoc.load(new_state({"name": MARKER}, client_id_for("alice")))
    state = key.seal("state", doc.state())
    log = []
    for version, patch in ((2, {"city": "Amsterdam"}), (3, {"age": 36})):
        log.append(key.seal(f"update:{version}", doc.apply_patch(patch, client_id_for("alice"))))
    return state, log, doc.profile()


async def test_the_replicas_rows_open_to_what_central_wrote(keys: Keyring) -> None:
    key = await keys.create("t1")
    state, log, profile = stored(key)
    assert MARKER.encode() not in state + b"".join(log)
    assert folded(key, None, state, log, 1) == profile == {
        "name": MARKER, "city": "Amsterdam", "age": 36}
    assert folded(key, key.seal_json("profile", profile), None, None, 3) == profile
    assert TwinDoc.load(folded_state(key, state, log, 1)).profile() == profile
    assert folded_state(key, state, [], 1) == key.open("state", state)


async def test_a_value_moved_to_another_version_field_or_twin_does_not_open(
    keys: Keyring,
) -> None:
    key, other = await keys.create("t1"), await keys.create("t2")
    state, log, _ = stored(key)
    with pytest.raises(SealError):
        folded(key, None, state, log[::-1], 1)  # the log's rows swapped
    with pytest.raises(SealError):
        folded(key, None, state, log, 0)  # read as versions 1 and 2
    with pytest.raises(SealError):
        folded(key, state, None, None, 1)  # a state stored as the profile
    with pytest.raises(SealError):
        folded(other, None, state, log, 1)  # another twin's rows


class FakeRedis:
    """What ``TwinCache`` asks of Redis for ``get`` and ``fill``: its two scripts, with the
    follower's state set up (floor, epoch, mark) and no ``inv:`` marks."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def register_script(self, script: str) -> Any:
        async def fill(keys: list[str], args: list[Any]) -> int:
            self.values[args[3]] = args[1]
            return 1

        async def get(keys: list[str], args: list[Any]) -> list[Any]:
            return [self.values.get(args[0]), str(ConsistencyToken(16)).encode()]
        return fill if "SET" in script else get


async def test_redis_holds_a_twins_view_sealed_under_its_key(keys: Keyring) -> None:
    redis = FakeRedis()
    cache = TwinCache(redis)  # type: ignore[arg-type]
    await keys.create("t1")
    view = CachedTwin(3, "alice", {"name": MARKER}, {"bob": "read"}, str(ConsistencyToken(16)))
    assert await cache.fill("t1", view, keys)
    assert MARKER.encode() not in redis.values["t1"] and b"alice" not in redis.values["t1"]
    assert await cache.get("t1", keys) == (view, ConsistencyToken(16))
    # An entry not sealed under the twin's key (an older hub's, or another twin's) is a miss.
    redis.values["t2"] = redis.values["t1"]
    await keys.create("t2")
    assert (await cache.get("t2", keys))[0] is None
    redis.values["t1"] = cache._encoder.encode(view)
    assert (await cache.get("t1", keys))[0] is None
    # A twin whose key is gone (erased) neither answers nor fills.
    redis.values["t1"] = (await keys.key("t1")).seal("view", cache._encoder.encode(view))
    await keys.destroy("t1")
    assert (await cache.get("t1", keys))[0] is None
    assert not await cache.fill("t1", view, keys)


class FakeReplica:
    def __init__(self, keys: Keyring) -> None:
        self.keys = keys


async def test_a_workers_feed_tail_forgets_an_erased_twins_key(keys: Keyring) -> None:
    feed = RealtimeFeed(FakeReplica(keys), None)  # type: ignore[arg-type]
    await keys.create("t1")
    await keys.create("t2")
    await feed.hand_on([Row(1, "twin", "t1", 4), Row(2, "grant", "t2", None)],
                       ConsistencyToken(5))
    assert keys.cached("t1") is not None and keys.cached("t2") is not None
    await feed.hand_on([Row(3, "twin", "t1", None)], ConsistencyToken(6))  # the erasure's row
    assert keys.cached("t1") is None and keys.cached("t2") is not None
