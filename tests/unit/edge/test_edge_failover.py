"""Failover: reads go to the next hub, writes only when provably unsent or idempotent; circuits
open on failures and recover by a single half-open probe; no hub at all is a 503."""

from __future__ import annotations

import msgspec

from mbedge import HubResponse
from mbwire.actions import BY_NAME, Action
from mbwire.rules import idempotency_key
from tests.unit.edge.edge_fakes import FakeHubs, HubRequest, Rig, make_rig, ok_handler, token


async def test_read_fails_over_to_the_next_nearest_hub(rig: Rig) -> None:
    rig.hubs.mode["ams"] = "timeout"
    r = await rig.call("GET", "/v1/regions", token=token())
    assert r.status == 200 and r.headers["x-served-by"] == "edge=ams; hub=iad"
    assert rig.hubs.regions() == ["ams", "iad"]


async def test_circuit_opens_then_half_open_probe_brings_the_hub_back(rig: Rig) -> None:
    rig.hubs.mode["ams"] = "refused"
    await rig.call("GET", "/v1/regions", token=token())  # refused: a hard failure, opens at once
    rig.hubs.seen.clear()
    r = await rig.call("GET", "/v1/regions", token=token())
    assert rig.hubs.regions() == ["iad"] and r.headers["x-served-by"].endswith("hub=iad")
    rig.hubs.mode["ams"] = "up"
    rig.clock.t += 5.0  # cool-down over: half-open
    r = await rig.call("GET", "/v1/regions", token=token())
    assert r.headers["x-served-by"].endswith("hub=iad")  # users are not the probe...
    assert len(rig.background) == 1  # ...a background /healthz is
    await rig.drain()
    assert rig.hubs.seen[-1][1].url == "http://hub-ams.test/healthz"
    r = await rig.call("GET", "/v1/regions", token=token())
    assert r.headers["x-served-by"].endswith("hub=ams")


async def test_probe_is_single_while_half_open(rig: Rig) -> None:
    rig.hubs.mode["ams"] = "refused"
    await rig.call("GET", "/v1/regions", token=token())
    rig.clock.t += 5.0
    for _ in range(3):
        await rig.call("GET", "/v1/regions", token=token())
    assert len(rig.background) == 1


async def test_write_not_retried_when_the_hub_may_have_applied_it(rig: Rig) -> None:
    rig.hubs.mode["ams"] = "reset"
    r = await rig.call("POST", "/v1/twins/t1/grants", token=token(), body=b"{}")
    assert r.status == 504 and b"may or may not" in r.body
    assert rig.hubs.regions() == ["ams"]


async def test_write_retried_when_never_sent(rig: Rig) -> None:
    rig.hubs.mode["ams"] = "refused"
    r = await rig.call("POST", "/v1/twins/t1/grants", token=token(), body=b"{}")
    assert r.status == 200 and rig.hubs.regions() == ["ams", "iad"]


async def test_write_retried_with_an_idempotency_key(rig: Rig) -> None:
    rig.hubs.mode["ams"] = "timeout"
    r = await rig.call("POST", "/v1/twins", token=token(), body=b"{}",
                       headers={"Idempotency-Key": "k1"})
    assert r.status == 200 and rig.hubs.regions() == ["ams", "iad"]
    assert rig.hubs.seen[-1][1].headers["idempotency-key"] == "k1"


def test_idempotency_keys_where_the_table_says() -> None:
    transfer = Action(name="t", method="POST", path="/v1/transactions", summary="", writes=True,
                      idempotency=("body",))
    events = Action(name="e", method="POST", path="/v1/events", summary="", writes=True,
                    idempotency=("items",), cost_items="events", max_items=100)
    assert idempotency_key(transfer, None, b'{"idempotency_key": "tx-1"}') == "tx-1"
    assert idempotency_key(transfer, None, b'{"amount": "1"}') is None
    both = b'{"events": [{"idempotency_key": "a"}, {"idempotency_key": "b"}]}'
    assert idempotency_key(events, None, both) == "a,b"
    assert idempotency_key(events, None, b'{"events": [{"idempotency_key": "a"}, {}]}') is None
    assert idempotency_key(BY_NAME["patch_twin"], "k1", b"{}") == "k1"
    assert idempotency_key(BY_NAME["patch_twin"], None, b"{}") is None
    assert idempotency_key(BY_NAME["get_twin_profile"], "k1", b"") is None


async def test_503_from_a_hub_is_retried_for_reads_but_leaves_its_circuit_closed() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        if region == "ams":
            return HubResponse(503, {"content-type": "application/problem+json",
                                     "retry-after": "2"}, b"{}")
        return ok_handler(region, req)

    r = make_rig(FakeHubs(handler=hub))
    resp = await r.call("GET", "/v1/regions", token=token())
    assert resp.status == 200 and resp.headers["x-served-by"].endswith("hub=iad")
    assert r.edge.ports.health.is_healthy("ams")


async def test_last_503_is_passed_through_when_every_hub_says_so() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        return HubResponse(503, {"content-type": "application/problem+json",
                                 "retry-after": "4"}, b'{"region":"%s"}' % region.encode())

    r = make_rig(FakeHubs(handler=hub))
    resp = await r.call("GET", "/v1/regions", token=token())
    assert resp.status == 503 and resp.headers["retry-after"] == "4"
    assert len(r.hubs.seen) == 3


async def test_no_hub_can_answer_is_503_upstream_unavailable(rig: Rig) -> None:
    rig.hubs.mode.update(ams="refused", iad="refused", sin="refused")
    r = await rig.call("GET", "/v1/regions", token=token())
    assert r.status == 503 and int(r.headers["retry-after"]) >= 1
    assert msgspec.json.decode(r.body)["type"].endswith("upstream-unavailable")
    # All circuits open: the next request is refused at once, without trying any hub.
    rig.hubs.seen.clear()
    r = await rig.call("GET", "/v1/regions", token=token())
    assert r.status == 503 and rig.hubs.seen == []


async def test_all_open_then_cooled_down_uses_the_request_as_the_probe(rig: Rig) -> None:
    rig.hubs.mode.update(ams="refused", iad="refused", sin="refused")
    await rig.call("GET", "/v1/regions", token=token())
    rig.hubs.mode.update(ams="up", iad="up", sin="up")
    rig.clock.t += 5.0
    r = await rig.call("GET", "/v1/regions", token=token())
    assert r.status == 200 and r.headers["x-served-by"].endswith("hub=ams")


async def test_active_probes_update_health(rig: Rig) -> None:
    rig.hubs.mode["sin"] = "refused"
    assert await rig.edge.probe_hubs() == {"ams": True, "iad": True, "sin": False}
    assert not rig.edge.ports.health.is_healthy("sin")
    rig.hubs.mode["sin"] = "up"
    await rig.edge.probe_hubs()
    assert rig.edge.ports.health.is_healthy("sin")
