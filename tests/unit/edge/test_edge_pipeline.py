"""The pipeline end to end over fake ports: ids, tracing, headers, hop signing, pass-through,
rate limits (PoP and merged fleet), routing by location."""

from __future__ import annotations

import re

import msgspec
import pytest

from mbedge import HubRequest, HubResponse
from mbwire import HopError, HopSigner, Principal
from mbwire.actions import BY_NAME, Action
from mbwire.rules import cost_of
from tests.unit.edge.edge_fakes import HOP_SECRET, NEAR, FakeHubs, Rig, make_rig, token


async def test_healthz_needs_no_auth_and_stays_at_the_edge(rig: Rig) -> None:
    r = await rig.call("GET", "/healthz")
    assert r.status == 200
    assert msgspec.json.decode(r.body)["pop"] == "ams"
    assert r.headers["x-served-by"] == "edge=ams"
    assert "ratelimit-remaining" in r.headers
    assert rig.hubs.seen == []


async def test_request_id_echoed_when_sane_else_generated(rig: Rig) -> None:
    r = await rig.call("GET", "/v1/twins/t1", token=token(), headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert rig.hubs.seen[0][1].headers["x-request-id"] == "abc-123"
    r = await rig.call("GET", "/v1/twins/t1", token=token(), headers={"X-Request-Id": "bad id\n"})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


async def test_traceparent_propagated_or_started(rig: Rig) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await rig.call("GET", "/v1/regions", token=token(), headers={"traceparent": tp})
    assert rig.hubs.seen[-1][1].headers["traceparent"] == tp
    await rig.call("GET", "/v1/regions", token=token(), headers={"traceparent": "garbage"})
    started = rig.hubs.seen[-1][1].headers["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", started) and started != tp


async def test_hop_is_signed_over_the_wire_path_query_and_body_not_authorization(
    rig: Rig,
) -> None:
    await rig.call("PATCH", "/v1/twins/t1", token=token("bob", tier="free"),
                   query="fields=a%2Cb", body=b'{"q": 1}')
    await rig.call("GET", "/v1/twins/a%3Ab", token=token("bob", tier="free"), query="fields=x")
    (_, posted), (_, sent) = rig.hubs.seen
    assert sent.url == "http://hub-ams.test/v1/twins/a%3Ab?fields=x"
    assert "authorization" not in sent.headers
    signer, rid = HopSigner(HOP_SECRET), sent.headers["x-request-id"]
    with pytest.raises(HopError):  # the decoded path is not what the hub receives
        signer.verify("GET", "/v1/twins/a:b", sent.headers, rid, query="fields=x")
    principal = signer.verify("GET", "/v1/twins/a%3Ab", sent.headers, rid, query="fields=x")
    assert principal == Principal(sub="bob", tier="free")
    assert signer.verify("PATCH", "/v1/twins/t1", posted.headers,
                         posted.headers["x-request-id"], query="fields=a%2Cb",
                         body=b'{"q": 1}') == principal


async def test_binary_body_and_headers_pass_through() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        assert req.body == bytes(range(256))
        assert req.headers["content-type"] == "application/octet-stream"
        return HubResponse(201, {"content-type": "application/json", "location": "/v1/twins/t",
                                 "x-consistency-token": "L00000000000000FF",
                                 "x-replica-lag-ms": "3", "x-mb-hub": "iad",
                                 "set-cookie": "no=1", "x-internal": "secret"}, b"{}")

    r = make_rig(FakeHubs(handler=hub))
    resp = await r.call("POST", "/v1/twins/t/updates", token=token(), body=bytes(range(256)),
                        headers={"content-type": "application/octet-stream"})
    assert resp.status == 201
    assert resp.headers["location"] == "/v1/twins/t"
    assert resp.headers["x-consistency-token"] == "L00000000000000FF"
    assert resp.headers["x-replica-lag-ms"] == "3"
    assert resp.headers["x-served-by"] == "edge=ams; hub=iad"
    assert "set-cookie" not in resp.headers and "x-internal" not in resp.headers
    assert "x-cache" not in resp.headers  # a write


async def test_hub_part_falls_back_to_served_by_then_routed_region() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        headers = {"content-type": "application/json"}
        if req.url.endswith("/a"):
            headers["x-served-by"] = "hub=sin"
        return HubResponse(200, headers, b"{}")

    r = make_rig(FakeHubs(handler=hub))
    assert (await r.call("GET", "/v1/twins/a", token=token())).headers["x-served-by"] == \
        "edge=ams; hub=sin"
    assert (await r.call("GET", "/v1/twins/b", token=token())).headers["x-served-by"] == \
        "edge=ams; hub=ams"


async def test_paths_no_action_serves_are_answered_at_the_edge(rig: Rig) -> None:
    r = await rig.call("GET", "/admin", token=token())
    assert r.status == 404 and rig.hubs.seen == []
    r = await rig.call("GET", "/v1/no/such/thing", token=token())
    assert r.status == 404 and r.headers["content-type"] == "application/problem+json"
    r = await rig.call("PUT", "/v1/twins/t1", token=token(), body=b"{}")
    assert r.status == 405 and r.headers["allow"] == "DELETE, GET, PATCH"
    assert msgspec.json.decode(r.body)["status"] == 405
    assert rig.hubs.seen == []


async def test_unexpected_error_is_a_bare_500_problem() -> None:
    def broken(region: str, req: HubRequest) -> HubResponse:
        raise ZeroDivisionError("secret stack detail")

    r = make_rig(FakeHubs(handler=broken))
    resp = await r.call("GET", "/v1/regions", token=token())
    assert resp.status == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert b"secret" not in resp.body and b"Traceback" not in resp.body


async def test_pop_rate_limit_per_sub_with_headers_and_retry_after(rig: Rig) -> None:
    for i in range(10):
        r = await rig.call("GET", "/v1/regions", token=token("f", tier="free"))
        assert r.status == 200
        assert r.headers["ratelimit-limit"] == "10"
        assert r.headers["ratelimit-remaining"] == str(9 - i)
    r = await rig.call("GET", "/v1/regions", token=token("f", tier="free"))
    assert r.status == 429 and r.headers["content-type"] == "application/problem+json"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-remaining"] == "0"
    # Another sub has its own budget; time frees the first one's.
    assert (await rig.call("GET", "/v1/regions", token=token("g", tier="free"))).status == 200
    rig.clock.t += 60
    assert (await rig.call("GET", "/v1/regions", token=token("f", tier="free"))).status == 200


def test_a_batch_costs_one_unit_per_item_capped() -> None:
    batch = Action(name="batch", method="POST", path="/v1/batch", summary="", writes=False,
                   cost_items="queries", max_items=50)
    assert cost_of(batch, msgspec.json.encode({"queries": [{}] * 4})) == 4
    assert cost_of(batch, msgspec.json.encode({"queries": [{}] * 80})) == 50
    assert cost_of(batch, msgspec.json.encode({"queries": []})) == 1
    assert cost_of(batch, b"not json") == 1
    assert cost_of(BY_NAME["get_twin_profile"], b"") == 1


async def test_fleet_counts_merge_as_the_minimum() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        return HubResponse(200, {"content-type": "application/json", "x-mb-fleet-limit": "100",
                                 "x-mb-fleet-remaining": "7", "x-mb-fleet-reset": "42"}, b"{}")

    r = make_rig(FakeHubs(handler=hub))
    resp = await r.call("GET", "/v1/regions", token=token())
    assert (resp.headers["ratelimit-limit"], resp.headers["ratelimit-remaining"],
            resp.headers["ratelimit-reset"]) == ("100", "7", "42")


async def test_hub_429_from_the_fleet_passes_through() -> None:
    def hub(region: str, req: HubRequest) -> HubResponse:
        return HubResponse(429, {"content-type": "application/problem+json", "retry-after": "9",
                                 "x-mb-fleet-limit": "100", "x-mb-fleet-remaining": "0",
                                 "x-mb-fleet-reset": "9"}, b'{"status":429}')

    r = make_rig(FakeHubs(handler=hub))
    resp = await r.call("GET", "/v1/regions", token=token())
    assert resp.status == 429 and resp.headers["retry-after"] == "9"
    assert resp.headers["ratelimit-remaining"] == "0"
    assert len(r.hubs.seen) == 1  # a 429 is an answer, not a reason to try another hub


@pytest.mark.parametrize("region", ["ams", "iad", "sin"])
async def test_debug_geo_picks_the_nearest_hub_in_dev_mode(region: str) -> None:
    r = make_rig()
    resp = await r.call("GET", "/v1/regions", token=token(), headers={"X-Debug-Geo": NEAR[region]})
    assert resp.headers["x-served-by"] == f"edge=ams; hub={region}"


async def test_debug_geo_ignored_outside_dev_mode() -> None:
    r = make_rig(dev_mode=False)
    resp = await r.call("GET", "/v1/regions", token=token(), headers={"X-Debug-Geo": NEAR["sin"]})
    assert resp.headers["x-served-by"] == "edge=ams; hub=ams"


async def test_default_origin_is_the_pops_region() -> None:
    r = make_rig(pop="sin")
    resp = await r.call("GET", "/v1/regions", token=token())
    assert resp.headers["x-served-by"] == "edge=sin; hub=sin"


async def test_body_over_the_limit_is_413() -> None:
    r = make_rig(max_body_bytes=10)
    resp = await r.call("POST", "/v1/twins", token=token(), body=b"x" * 11)
    assert resp.status == 413 and r.hubs.seen == []
