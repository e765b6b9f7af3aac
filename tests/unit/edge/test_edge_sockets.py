"""The socket paths' shared rules (``mbedge.sockets``): which paths exist (a twin id checked on
``/v1/yjs/{twin_id}``), where the JWT may come from (header, subprotocols, and on /v1/yjs the
query's ``token``), and that the token never leaves the edge: the hub's URL and the signed hop
carry the client's query without it, every other parameter kept in order."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbedge import EdgeRequest
from mbedge.sockets import (
    HUB_REFUSALS,
    REALTIME,
    YJS,
    Upgrade,
    hub_refusal,
    hub_target,
    plan_upgrade,
    route_of,
    without_param,
)
from mbwire import BadRequest, HopSigner, NotFound, RateLimited, Unauthorized
from mbwire.socket_auth import until_of
from tests.unit.edge.edge_fakes import HOP_SECRET, make_rig, token


def upgrade_request(path: str, *, query: str = "", headers: dict[str, str] | None = None,
                    ) -> EdgeRequest:
    return EdgeRequest(method="GET", path=path, query=query, body=b"", headers=headers or {})


async def planned(path: str, **kw: Any) -> tuple[Upgrade, str, dict[str, str]]:
    """The plan, and the first hub's URL and hop headers."""
    rig = make_rig()
    upgrade = await plan_upgrade(rig.edge, upgrade_request(path, **kw), "w1")
    url, hop = hub_target(rig.edge, HopSigner(HOP_SECRET), upgrade, upgrade.candidates[0])
    return upgrade, url, hop


# Paths.

@pytest.mark.parametrize(("path", "route", "hub_path"), [
    ("/v1/realtime", REALTIME, "/v1/realtime"),
    ("/v1/yjs/t1", YJS, "/v1/yjs/t1"),
    ("/v1/yjs/Tw.1_a:b-c", YJS, "/v1/yjs/Tw.1_a:b-c"),
    ("/v1/yjs/" + "a" * 128, YJS, "/v1/yjs/" + "a" * 128),
])
def test_the_socket_paths(path: str, route: Any, hub_path: str) -> None:
    assert route_of(path) == (route, hub_path)


@pytest.mark.parametrize("path", [
    "/v1/yjs", "/v1/yjs/", "/v1/yjs/t1/", "/v1/yjs/a/b", "/v1/yjs/-t1", "/v1/yjs/.t1",
    "/v1/yjs/bad id", "/v1/yjs/t\n1", "/v1/yjs/t1?x", "/v1/yjs/" + "a" * 129, "/v1/yjsx/t1",
    "/v2/yjs/t1", "/x/v1/yjs/t1", "/v1/realtime/", "/v1/realtime/t1", "/v1/twins/t1", "/",
])
def test_anything_else_is_a_404(path: str) -> None:
    with pytest.raises(NotFound):
        route_of(path)


async def test_a_percent_encoded_twin_id_reaches_the_hub_in_its_canonical_form() -> None:
    upgrade, url, hop = await planned("/v1/yjs/t%31", query=f"token={token()}")
    assert upgrade.path == "/v1/yjs/t1" and urlsplit(url).path == "/v1/yjs/t1"
    assert HopSigner(HOP_SECRET).verify("GET", "/v1/yjs/t1", hop, "w1", query=upgrade.query)


async def test_a_bad_twin_id_is_a_404_before_the_token_is_read() -> None:
    rig = make_rig()
    for path in ("/v1/yjs/%2Ft1", "/v1/yjs/bad%20id", "/v1/yjs"):
        with pytest.raises(NotFound):
            await plan_upgrade(rig.edge, upgrade_request(path, query=f"token={token()}"), "w1")


# The token in the query.

async def test_the_query_token_is_removed_and_every_other_parameter_kept_in_order() -> None:
    jwt = token("alice")
    query = f"room=a%20b&token={jwt}&x=1&mb_until=99999999999&x=2&flag&z=%E2%9C%93"
    upgrade, url, hop = await planned("/v1/yjs/t1", query=query)
    sent = urlsplit(url)
    assert upgrade.principal.sub == "alice" and upgrade.protocol is None
    assert sent.query == f"room=a%20b&x=1&x=2&flag&z=%E2%9C%93&mb_until={upgrade.until}"
    # What the hop signs is exactly what the URL carries.
    assert sent.query == upgrade.query
    assert HopSigner(HOP_SECRET).verify("GET", sent.path, hop, "w1", query=sent.query)
    assert until_of(sent.query) == upgrade.until
    assert jwt not in url and jwt not in str(hop) and jwt not in repr(upgrade)


async def test_a_token_spelt_otherwise_in_the_query_is_still_taken_out() -> None:
    jwt = token("alice")
    upgrade, url, _ = await planned("/v1/yjs/t1", query=f"%74oken={quote(jwt, safe='')}&a=1")
    assert upgrade.principal.sub == "alice"
    assert jwt not in url and urlsplit(url).query == f"a=1&mb_until={upgrade.until}"


async def test_realtime_takes_no_token_from_the_query_but_never_forwards_one() -> None:
    jwt = token("alice")
    rig = make_rig()
    with pytest.raises(Unauthorized):
        await plan_upgrade(rig.edge, upgrade_request("/v1/realtime", query=f"token={jwt}"), "w1")
    upgrade, url, _ = await planned("/v1/realtime", query=f"a=1&token={jwt}",
                                    headers={"authorization": f"Bearer {token('bob')}"})
    assert upgrade.principal.sub == "bob"
    assert jwt not in url and urlsplit(url).query == f"a=1&mb_until={upgrade.until}"


async def test_two_tokens_in_the_query_are_a_400() -> None:
    with pytest.raises(BadRequest):
        await planned("/v1/yjs/t1", query=f"token={token()}&token={token('bob')}")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "token", "tok", "tokens", "%74oken"]),
                          st.text(alphabet="xyz0=%+.", max_size=4)), max_size=8))
def test_without_param_drops_exactly_the_named_parameter(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{k}={v}" for k, v in pairs)
    kept, values = without_param(query, "token")
    assert kept == "&".join(f"{k}={v}" for k, v in pairs if k not in ("token", "%74oken"))
    assert len(values) == sum(k in ("token", "%74oken") for k, _ in pairs)


# Where the token comes from: all three accepted, a forged one refused.

SOURCES = {
    "query": lambda jwt: {"query": f"token={jwt}"},
    "subprotocol": lambda jwt: {"headers": {"sec-websocket-protocol": f"bearer, {jwt}"}},
    "header": lambda jwt: {"headers": {"authorization": f"Bearer {jwt}"}},
}


@pytest.mark.parametrize("source", SOURCES)
async def test_the_token_from_the_query_the_subprotocol_or_the_header(source: str) -> None:
    upgrade, url, _ = await planned("/v1/yjs/t1", **SOURCES[source](token("alice")))
    assert upgrade.principal.sub == "alice" and upgrade.route is YJS
    assert upgrade.protocol == ("bearer" if source == "subprotocol" else None)
    assert urlsplit(url).query == f"mb_until={upgrade.until}"


@pytest.mark.parametrize("source", SOURCES)
async def test_a_forged_token_is_refused_401(source: str) -> None:
    forged = token("alice", secret="not-the-edge-secret-" * 2)
    with pytest.raises(Unauthorized):
        await planned("/v1/yjs/t1", **SOURCES[source](forged))


async def test_no_token_at_all_is_a_401_naming_the_query_parameter() -> None:
    with pytest.raises(Unauthorized, match="'token'"):
        await planned("/v1/yjs/t1", query="a=1&token=")


async def test_each_upgrade_costs_one_unit_of_the_pop_limit() -> None:
    rig, jwt = make_rig(), token("frugal", tier="free")  # 10 per minute
    req = upgrade_request("/v1/yjs/t1", query=f"token={jwt}")
    for _ in range(10):
        await plan_upgrade(rig.edge, req, "w1")
    with pytest.raises(RateLimited):
        await plan_upgrade(rig.edge, req, "w1")


async def test_the_nearest_healthy_hub_first_as_for_realtime() -> None:
    rig = make_rig()
    near_sin = {"authorization": f"Bearer {token()}", "x-debug-geo": "1.3,103.8"}
    yjs = await plan_upgrade(rig.edge, upgrade_request("/v1/yjs/t1", headers=near_sin), "w1")
    realtime = await plan_upgrade(rig.edge, upgrade_request("/v1/realtime", headers=near_sin),
                                  "w1")
    assert yjs.candidates == realtime.candidates and yjs.candidates[0] == "sin"
    rig.edge.ports.health.record_failure("sin", hard=True)
    again = await plan_upgrade(rig.edge, upgrade_request("/v1/yjs/t1", headers=near_sin), "w1")
    assert again.candidates[0] != "sin"


# The hub's answer to the upgrade.

async def test_a_hubs_4xx_is_the_callers_problem_and_a_5xx_a_failing_hub() -> None:
    upgrade, _, _ = await planned("/v1/yjs/t1", query=f"token={token()}")
    assert {401, 403, 404, 429} <= HUB_REFUSALS and 503 not in HUB_REFUSALS
    refused = hub_refusal(upgrade, "ams", 404)
    assert isinstance(refused, NotFound) and "hub ams" in refused.detail
    limited = hub_refusal(upgrade, "ams", 429, "7")
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    assert hub_refusal(upgrade, "ams", 503) is None and hub_refusal(upgrade, "ams", 500) is None
