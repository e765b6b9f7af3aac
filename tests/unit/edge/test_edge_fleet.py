"""Cache hits count toward the fleet limit: a PoP answers a hit only by spending a fleet unit the
hubs leased it on one of its own forwarded answers, so hits at every PoP together never exceed
the caller's limit; without a unit a cached read goes to a hub like a miss. Answers a hub marks
``no-store`` (they relied on a revocable grant) are never cached."""

from __future__ import annotations

import asyncio
import base64
import itertools
import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mbwire import Principal
from mbwire.headers import FLEET_LEASE
from tests.unit.edge.edge_fakes import Clock, FakeHubs, HubRequest, HubResponse, make_rig, token

WINDOW_S = 60.0


class FakeFleet:
    """The hubs' fleet limiter as the edge meets it (regional.ratelimit): an exact sliding log
    per sub; a request that asks ``want=n`` also takes up to ``min(n, cap)`` more units, logged
    at now + hold (when the PoP may last spend them). Every hub answers from this one fleet."""

    def __init__(self, clock: Clock, *, limit: int, cap: int, hold_s: float = 1.0) -> None:
        self.clock, self.limit, self.cap, self.hold_s = clock, limit, cap, hold_s
        self.log: dict[str, list[tuple[float, int]]] = {}
        self.asked: list[str | None] = []
        self.counter = itertools.count(1)

    def __call__(self, region: str, req: HubRequest) -> HubResponse:
        raw = req.headers["x-mb-principal"]
        sub = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                  type=Principal).sub
        now = self.clock()
        log = self.log[sub] = [(t, n) for t, n in self.log.get(sub, []) if t > now - WINDOW_S]
        used = sum(n for _, n in log)
        asked = req.headers.get(FLEET_LEASE)
        self.asked.append(asked)
        want = int(asked.removeprefix("want=")) if asked else 0
        headers = {"content-type": "application/json", "x-mb-fleet-limit": str(self.limit)}
        if used + 1 > self.limit:
            oldest = min(t for t, _ in log)
            wait = str(max(1, math.ceil(oldest + WINDOW_S - now)))
            return HubResponse(429, {**headers, "x-mb-fleet-remaining": "0",
                                     "x-mb-fleet-reset": wait, "retry-after": wait}, b"{}")
        granted = min(1 + min(want, self.cap), self.limit - used)
        log.append((now + self.hold_s if granted > 1 else now, granted))
        headers["x-mb-fleet-remaining"] = str(self.limit - used - 1)  # leased: the caller's
        headers["x-mb-fleet-reset"] = "60"
        if granted > 1:
            headers[FLEET_LEASE] = f"units={granted - 1}; hold-ms={round(self.hold_s * 1000)}"
        return HubResponse(200, headers, msgspec.json.encode({"n": next(self.counter)}))


def rigs(fleet: FakeFleet, clock: Clock, pops: tuple[str, ...] = ("ams", "iad", "sin")):
    return [make_rig(FakeHubs(handler=fleet, lease=None), clock=clock, pop=pop) for pop in pops]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2500)), min_size=1, max_size=90),
       st.integers(1, 12), st.integers(0, 4))
def test_hits_at_every_pop_together_never_exceed_the_fleet_limit(
    steps: list[tuple[int, int]], limit: int, cap: int
) -> None:
    clock = Clock()
    fleet = FakeFleet(clock, limit=limit, cap=cap)
    pops = rigs(fleet, clock)
    start, served = clock.t, []

    async def run() -> None:
        for pop, dt_ms in steps:
            clock.t += dt_ms / 1000
            r = await pops[pop].call("GET", "/v1/twins/t1", token=token("alice", tier="pro"),
                                     headers={"x-debug-geo": "52.3,4.9"})
            if r.status == 200:
                served.append(clock.t)
                assert 0 <= int(r.headers["ratelimit-remaining"]) < limit
            else:
                assert r.status == 429 and r.headers["ratelimit-remaining"] == "0"

    asyncio.run(run())
    for rig in pops:
        rig.close()
    # What the caller got, hits included, in any window of the limiter's length.
    for t in served:
        assert sum(1 for s in served if t - WINDOW_S < s <= t) <= limit, (served, start)


async def test_a_cached_read_without_a_unit_goes_to_a_hub_and_asks_for_a_lease() -> None:
    clock = Clock()
    fleet = FakeFleet(clock, limit=100, cap=2)
    (r,) = rigs(fleet, clock, ("ams",))
    alice = token("alice", tier="pro")
    first = await r.call("GET", "/v1/twins/t1", token=alice)
    # Nothing cached yet: no lease asked (an answer may turn out not cacheable: no-store).
    assert first.headers["x-cache"] == "MISS" and fleet.asked == [None]
    second = await r.call("GET", "/v1/twins/t1", token=alice)
    assert second.headers["x-cache"] == "MISS" and fleet.asked[-1] == "want=1"
    assert FLEET_LEASE not in second.headers  # the hub's lease is the PoP's, not the client's
    third = await r.call("GET", "/v1/twins/t1", token=alice)
    assert third.headers["x-cache"] == "HIT" and len(fleet.asked) == 2
    assert third.body == second.body
    fourth = await r.call("GET", "/v1/twins/t1", token=alice)  # the unit is spent
    assert fourth.headers["x-cache"] == "MISS" and fleet.asked[-1] == "want=3"
    assert [(await r.call("GET", "/v1/twins/t1", token=alice)).headers["x-cache"]
            for _ in range(3)] == ["HIT", "HIT", "MISS"]  # the cap gave two
    r.close()


async def test_ratelimit_headers_on_hits_count_the_fleets_units_down() -> None:
    clock = Clock()
    fleet = FakeFleet(clock, limit=100, cap=2)
    (r,) = rigs(fleet, clock, ("ams",))
    alice = token("alice", tier="pro")
    seen = []
    for _ in range(6):
        got = await r.call("GET", "/v1/twins/t1", token=alice)
        seen.append((got.headers["x-cache"], got.headers["ratelimit-remaining"]))
    # Every answer, hit or not, says what the fleet has left for the caller.
    assert seen == [("MISS", "99"), ("MISS", "98"), ("HIT", "97"), ("MISS", "96"),
                    ("HIT", "95"), ("HIT", "94")]
    r.close()


async def test_leased_units_lapse_after_their_hold_and_belong_to_one_caller() -> None:
    clock = Clock()
    fleet = FakeFleet(clock, limit=100, cap=2, hold_s=1.0)
    (r,) = rigs(fleet, clock, ("ams",))
    alice, bob = token("alice", tier="pro"), token("bob", tier="pro")
    for _ in range(2):
        await r.call("GET", "/v1/twins/t1", token=alice)  # the second leases a unit
        await r.call("GET", "/v1/twins/t1", token=bob)
    assert fleet.asked[-2:] == ["want=1", "want=1"]
    clock.t += 1.01  # the hold is over: the unit lapses (unspent, it is lost)
    late = await r.call("GET", "/v1/twins/t1", token=alice)
    assert late.headers["x-cache"] == "MISS" and fleet.asked[-1] is not None
    assert (await r.call("GET", "/v1/twins/t1", token=alice)).headers["x-cache"] == "HIT"
    # Alice's fresh units answer only alice: bob's cached read still needs one of his own.
    assert (await r.call("GET", "/v1/twins/t1", token=bob)).headers["x-cache"] == "MISS"
    r.close()


async def test_a_lease_only_counts_on_the_edges_own_forwarded_answer() -> None:
    """A signed-URL request carries no principal: whatever lease header comes back is ignored,
    and a client never sees one."""
    r = make_rig(FakeHubs(lease="units=5; hold-ms=1000"))
    got = await r.call("PUT", "/v1/artifacts/a1/content", body=b"x",
                       query="exp=1900000000&sig=" + "s" * 43,
                       headers={"content-type": "text/plain"})
    assert got.status == 200 and FLEET_LEASE not in got.headers
    assert r.edge.fleet.held == 0
    r.close()


async def test_no_store_answers_are_never_cached_and_say_so_to_the_client() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        return HubResponse(200, {"content-type": "application/json",
                                 "cache-control": "private, no-store"}, b'{"granted":true}')

    r = make_rig(FakeHubs(handler=hub))
    answers = [await r.call("GET", "/v1/twins/t1", token=token("grantee")) for _ in range(3)]
    assert [a.headers["x-cache"] for a in answers] == ["MISS"] * 3
    assert len(r.hubs.seen) == 3
    assert all(a.headers["cache-control"] == "private, no-store" for a in answers)
    # Nothing cached, so no lease is ever asked for on the grantee's behalf (none wasted).
    assert all(FLEET_LEASE not in req.headers for _, req in r.hubs.seen)
    r.close()
