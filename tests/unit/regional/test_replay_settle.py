"""The hub's check-then-wait for a consistency token: a token beyond the primary is a 400 at once,
central is asked only past what is already known, and a central that cannot answer means waiting."""

from __future__ import annotations

import pytest

from mbwire import BadRequest, ConsistencyToken, ReplicaBehind, UpstreamUnavailable
from regional.replica import ReplayClock


class Central:
    def __init__(self, at: int | None) -> None:
        self.at, self.asked = at, 0

    async def __call__(self) -> ConsistencyToken:
        self.asked += 1
        if self.at is None:
            raise UpstreamUnavailable("central is down")
        return ConsistencyToken(self.at)


def clock(central: Central, *, replayed: int = 100, received: int = 100) -> ReplayClock:
    c = ReplayClock("postgresql://unused", primary=central)  # never run: positions set by hand
    c.position, c.received = replayed, received
    return c


async def test_a_replayed_token_needs_no_question() -> None:
    central = Central(200)
    await clock(central).settle(ConsistencyToken(100), 1.0)
    assert central.asked == 0


async def test_a_token_beyond_the_primary_is_refused_and_the_answer_remembered() -> None:
    central = Central(200)
    c = clock(central)
    with pytest.raises(BadRequest, match="ahead of every write"):
        await c.settle(ConsistencyToken(10**12), 1.0)
    assert central.asked == 1 and c.primary_known == 200
    # A real token the replica has not received yet: central says it exists, so it is waited for.
    with pytest.raises(ReplicaBehind):
        await c.settle(ConsistencyToken(150), 0.1)
    assert central.asked == 1  # 150 <= the primary position already known: not asked again


async def test_without_central_the_token_is_waited_for() -> None:
    with pytest.raises(ReplicaBehind):
        await clock(Central(None)).settle(ConsistencyToken(10**12), 0.1)


def test_the_hub_waits_less_than_the_edge_gives_one_hub() -> None:
    from mbedge import EdgeSettings
    from regional.settings import HubSettings

    hub = HubSettings(region="ams", replica_url="", redis_url="", central_url="",
                      hop_secret="x", central_secret="y")
    edge = EdgeSettings(hubs={"ams": "http://h"}, hop_secret="s" * 16,
                        jwt_hs256_secret="k" * 32)
    assert hub.token_wait_ms / 1000 < edge.attempt_timeout_s
