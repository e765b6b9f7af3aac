"""Cache-first reads: HIT/MISS, keys that separate principals, invalidation by generation,
consistency tokens that bypass an older entry, TTL."""

from __future__ import annotations

import asyncio
import itertools

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mbedge import EdgeRequest, HubResponse, MemoryCache
from mbedge.cache import CachedAnswer, PopCache, covers, read_scope, write_scopes
from mbwire import Principal
from mbwire.actions import Match, match
from tests.unit.edge.edge_fakes import FakeHubs, HubRequest, Rig, make_rig, token


def counting_hub(token_value: str = "L0000000000000010") -> FakeHubs:
    counter = itertools.count(1)

    def hub(region: str, req: HubRequest) -> HubResponse:
        return HubResponse(200, {"content-type": "application/json", "x-mb-hub": region,
                                 "x-consistency-token": token_value},
                           msgspec.json.encode({"n": next(counter), "url": req.url}))

    return FakeHubs(handler=hub)


async def test_twin_read_miss_then_hit_with_token_and_no_hub_part() -> None:
    r = make_rig(counting_hub())
    first = await r.call("GET", "/v1/twins/t1", token=token(), query="fields=a")
    second = await r.call("GET", "/v1/twins/t1", token=token(), query="fields=a")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.body == first.body and len(r.hubs.seen) == 1
    assert second.headers["x-consistency-token"] == "L0000000000000010"
    assert second.headers["x-served-by"] == "edge=ams"  # the edge answered alone
    assert "ratelimit-remaining" in second.headers
    other_fields = await r.call("GET", "/v1/twins/t1", token=token(), query="fields=b")
    assert other_fields.headers["x-cache"] == "MISS"


async def test_reads_cached_per_query_string_and_uncached_actions_always_forwarded() -> None:
    r = make_rig(counting_hub())
    for query, expected in (("fields=a", "MISS"), ("fields=a", "HIT"), ("fields=b", "MISS")):
        got = await r.call("GET", "/v1/twins/t1", token=token(), query=query)
        assert got.headers["x-cache"] == expected, query
    # The table gives /sync no cache rule: every call reaches a hub.
    for _ in range(2):
        assert (await r.call("GET", "/v1/twins/t1/sync", token=token())).headers[
            "x-cache"] == "MISS"
    assert sum(1 for _, req in r.hubs.seen if req.url.endswith("/sync")) == 2


async def test_one_principal_never_sees_anothers_entry() -> None:
    r = make_rig(counting_hub())
    a = await r.call("GET", "/v1/twins/t1", token=token("alice"))
    b = await r.call("GET", "/v1/twins/t1", token=token("bob"))
    admin = await r.call("GET", "/v1/twins/t1", token=token("alice", role="admin"))
    assert [x.headers["x-cache"] for x in (a, b, admin)] == ["MISS", "MISS", "MISS"]
    assert len({a.body, b.body, admin.body}) == 3


async def test_only_200s_are_cached() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        return HubResponse(404, {"content-type": "application/problem+json"}, b"{}")

    r = make_rig(FakeHubs(handler=hub))
    for _ in range(2):
        assert (await r.call("GET", "/v1/twins/t1", token=token())).headers["x-cache"] == "MISS"
    assert len(r.hubs.seen) == 2


async def test_write_through_this_pop_drops_that_twins_entries() -> None:
    r = make_rig(counting_hub())
    await r.call("GET", "/v1/twins/t1", token=token())
    await r.call("GET", "/v1/twins/t2", token=token())
    await r.call("PATCH", "/v1/twins/t1", token=token(), body=b"{}")
    assert (await r.call("GET", "/v1/twins/t1", token=token())).headers["x-cache"] == "MISS"
    assert (await r.call("GET", "/v1/twins/t2", token=token())).headers["x-cache"] == "HIT"
    await r.call("POST", "/v1/twins/t2/updates", token=token("someone-else"), body=b"\x00")
    assert (await r.call("GET", "/v1/twins/t2", token=token())).headers["x-cache"] == "MISS"


async def test_write_that_fails_in_flight_still_invalidates() -> None:
    r = make_rig(counting_hub())
    await r.call("GET", "/v1/twins/t1", token=token())
    r.hubs.mode.update(ams="reset", iad="reset", sin="reset")
    assert (await r.call("POST", "/v1/twins/t1/grants", token=token(), body=b"{}")).status \
        == 504
    r.hubs.mode.update(ams="up", iad="up", sin="up")
    r.edge.ports.health.record_success("ams")
    assert (await r.call("GET", "/v1/twins/t1", token=token())).headers["x-cache"] == "MISS"


async def test_newer_consistency_token_skips_the_entry_older_uses_it() -> None:
    r = make_rig(counting_hub("L0000000000000010"))
    await r.call("GET", "/v1/twins/t1", token=token())
    older = await r.call("GET", "/v1/twins/t1", token=token(),
                         headers={"X-Consistency-Token": "L000000000000000F"})
    same = await r.call("GET", "/v1/twins/t1", token=token(),
                        headers={"X-Consistency-Token": "L0000000000000010"})
    newer = await r.call("GET", "/v1/twins/t1", token=token(),
                         headers={"X-Consistency-Token": "L0000000000000011"})
    assert [x.headers["x-cache"] for x in (older, same, newer)] == ["HIT", "HIT", "MISS"]
    assert r.hubs.seen[-1][1].headers["x-consistency-token"] == "L0000000000000011"


async def test_entries_expire_after_the_ttl() -> None:
    r = make_rig(counting_hub(), cache_ttl_s=5.0)
    await r.call("GET", "/v1/twins/t1", token=token())
    r.clock.t += 4.9
    assert (await r.call("GET", "/v1/twins/t1", token=token())).headers["x-cache"] == "HIT"
    r.clock.t += 0.2
    assert (await r.call("GET", "/v1/twins/t1", token=token())).headers["x-cache"] == "MISS"


async def test_no_cache_request_header_bypasses_lookup(rig: Rig) -> None:
    await rig.call("GET", "/v1/twins/t1", token=token())
    r = await rig.call("GET", "/v1/twins/t1", token=token(), headers={"Cache-Control": "no-cache"})
    assert r.headers["x-cache"] == "MISS"


def test_scopes_come_from_the_action_table() -> None:
    def found(method: str, path: str) -> Match:
        m = match(method, path)
        assert m is not None, (method, path)
        return m

    assert read_scope(found("GET", "/v1/twins/t1")) == "twin:t1"
    assert read_scope(found("GET", "/v1/twins/t1/sync")) is None
    assert read_scope(found("POST", "/v1/twins")) is None
    assert write_scopes(found("PATCH", "/v1/twins/t1")) == ("twin:t1",)
    assert write_scopes(found("POST", "/v1/twins/t1/grants")) == ("twin:t1",)
    assert write_scopes(found("DELETE", "/v1/twins/t1/grants/bob")) == ("twin:t1",)
    assert write_scopes(found("GET", "/v1/twins/t1")) == ()


def test_covers() -> None:
    assert covers("L0000000000000010", None)
    assert covers("L0000000000000010", "L0000000000000010")
    assert not covers("L0000000000000010", "L0000000000000011")
    assert not covers(None, "L0000000000000001")
    assert not covers("L0000000000000010", "garbage")


principals = st.builds(
    Principal, sub=st.text(min_size=1, max_size=20),
    tier=st.sampled_from(["free", "pro", "enterprise", "internal"]),
    role=st.sampled_from(["agent", "participant", "sre", "admin"]),
)


@given(principals, principals, st.text(max_size=10), st.binary(max_size=20))
def test_cache_keys_separate_principals(a: Principal, b: Principal, query: str,
                                        body: bytes) -> None:
    cache = PopCache(MemoryCache(), ttl_s=5, secret=b"s" * 32)
    req = EdgeRequest("GET", "/v1/twins/t1", {}, query=query, body=body)

    async def keys() -> tuple[str, str, str]:
        return (await cache.key("twin:t1", a, req), await cache.key("twin:t1", b, req),
                await cache.key("twin:t1", a, req))

    ka, kb, ka2 = asyncio.run(keys())
    assert ka == ka2
    assert (ka == kb) == (a == b)


def test_entries_are_kept_sealed_and_one_moved_under_another_key_is_a_miss() -> None:
    store = MemoryCache()
    cache = PopCache(store, ttl_s=5, secret=b"s" * 32)
    answer = CachedAnswer(b'{"profile": {"note": "zq-private-marker"}}', "application/json",
                          "L0000000000000001")

    async def run() -> tuple[CachedAnswer | None, CachedAnswer | None, bytes | None]:
        await cache.put("answer:a", answer)
        raw = await store.get("answer:a")
        assert raw is not None
        await store.put("answer:b", raw, 5)  # the same bytes under another key
        return await cache.get("answer:a"), await cache.get("answer:b"), raw

    got, moved, raw = asyncio.run(run())
    assert got == answer and moved is None
    assert raw is not None and b"zq-private-marker" not in raw
