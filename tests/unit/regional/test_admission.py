"""The hub's admission: requests pay their cost to the fleet window, and once the limits store
has failed a few times in a row the breaker stops asking it (fail open) until a probe succeeds."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mbwire import Principal, RateLimited
from regional.admission import FleetAdmission
from regional.breaker import Breaker
from regional.ratelimit import FleetDecision, FleetLimiter, FleetUnavailable

ALICE = Principal(sub="alice", tier="free", role="agent")
SCOPE = {"type": "http", "method": "POST", "path": "/v1/batch"}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class StandInLimiter:
    """Answers like FleetLimiter; ``down`` makes it fail as an unreachable Redis does."""

    def __init__(self, limit: int = 10) -> None:
        self.limit, self.used, self.down, self.calls = limit, 0, False, 0
        self.asked: list[int] = []

    async def hit(self, sub: str, tier: str, cost: int = 1, *, edge_lease: int = 0,
                  ) -> FleetDecision:
        self.calls += 1
        self.asked.append(edge_lease)
        if self.down:
            raise FleetUnavailable("fleet rate limiter unavailable: Timeout reading from socket")
        allowed = self.used + cost <= self.limit
        leased = min(edge_lease, 2, self.limit - self.used - cost) if allowed else 0
        self.used += cost + leased if allowed else 0
        return FleetDecision(allowed, self.limit, self.limit - self.used + leased, 60,
                             0 if allowed else 7, leased=leased, lease_hold_ms=1000)


def admission(limiter: StandInLimiter, clock: Clock, **kw: Any) -> FleetAdmission:
    return FleetAdmission(cast(FleetLimiter, limiter),
                          breaker=Breaker(failures=3, cooldown_s=5, clock=clock), **kw)


async def test_a_request_pays_what_the_cost_function_says() -> None:
    limiter, seen = StandInLimiter(limit=10), []

    def cost(method: str, path: str, body: bytes) -> int:
        seen.append((method, path, body))
        return 4

    admit = admission(limiter, Clock(), cost=cost)
    state: dict[str, Any] = {"body": b'{"queries": [1, 2, 3, 4]}'}
    await admit(ALICE, state, SCOPE)
    await admit(ALICE, state, SCOPE)
    assert seen[0] == ("POST", "/v1/batch", b'{"queries": [1, 2, 3, 4]}')
    assert limiter.used == 8 and state["response_headers"]["x-mb-fleet-remaining"] == "2"
    with pytest.raises(RateLimited):
        await admit(ALICE, state, SCOPE)


async def test_default_cost_is_one_unit() -> None:
    limiter = StandInLimiter()
    await admission(limiter, Clock())(ALICE, {}, SCOPE)
    assert limiter.used == 1


async def test_breaker_stops_asking_a_dead_store_then_probes_it_back() -> None:
    limiter, clock = StandInLimiter(limit=1), Clock()
    admit = admission(limiter, clock)
    limiter.down = True
    for _ in range(10):
        await admit(ALICE, {}, SCOPE)          # admitted: fail open
    assert limiter.calls == 3 and admit.skipped == 7
    limiter.down = False
    clock.now += 5
    await admit(ALICE, {}, SCOPE)              # the probe: it answers, the breaker closes
    assert admit.breaker.state == "closed"
    with pytest.raises(RateLimited):           # and limiting is back
        await admit(ALICE, {}, SCOPE)


async def test_an_edge_asking_for_units_gets_a_lease_on_its_answer() -> None:
    limiter = StandInLimiter(limit=10)
    admit = admission(limiter, Clock())
    state: dict[str, Any] = {"raw_headers": {"x-mb-edge": "ams", "x-mb-fleet-lease": "want=5"}}
    await admit(ALICE, state, SCOPE)
    assert limiter.asked == [5]
    assert state["response_headers"]["x-mb-fleet-lease"] == "units=2; hold-ms=1000"
    assert state["response_headers"]["x-mb-fleet-remaining"] == "9"  # 7 + the 2 leased
    plain: dict[str, Any] = {"raw_headers": {"x-mb-edge": "ams"}}
    await admit(ALICE, plain, SCOPE)
    assert limiter.asked[-1] == 0 and "x-mb-fleet-lease" not in plain["response_headers"]


@pytest.mark.parametrize("asked", ["want=", "want=-3", "want=abc", "units=4", "want=1e9",
                                   "want=99999999999"])
async def test_a_malformed_or_absurd_ask_leases_nothing(asked: str) -> None:
    limiter = StandInLimiter(limit=10)
    state: dict[str, Any] = {"raw_headers": {"x-mb-edge": "ams", "x-mb-fleet-lease": asked}}
    await admission(limiter, Clock())(ALICE, state, SCOPE)
    assert limiter.asked == [0] and "x-mb-fleet-lease" not in state["response_headers"]
