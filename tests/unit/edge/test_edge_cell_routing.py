"""Requests routed by cell through the whole pipeline: only the cell's hubs, nearest healthy
first; a 503 naming the zone when none answers; a pinned cell never cached and its answers
``no-store``; a batch over cells split and put back in order under the merged token; session
floors kept per cell; sockets to their cell's hubs. No sockets opened."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from mbedge import EdgeRequest, FetchFailed, HubRequest, HubResponse
from mbedge.sockets import hub_target, plan_upgrade
from mbwire import HopSigner, NotFound, Unprocessable
from mbwire.cells import Cell
from tests.unit.edge.edge_fakes import HOP_SECRET, Rig, make_rig, token

CELLS = (Cell("g1", "global", ("ams", "iad", "sin")), Cell("ru1", "ru", ("arn", "fra")),
         Cell("g2", "global", ("iad",)))
CELL_HUBS = {"ru1": {"arn": "http://hub-arn.ru1.test", "fra": "http://hub-fra.ru1.test"},
             "g2": {"iad": "http://hub-iad.g2.test"}}
NEAR_ARN = {"x-debug-geo": "59.6,17.9"}
NEAR_FRA = {"x-debug-geo": "50.1,8.7"}


def tok(cell: str, n: int) -> str:
    return (f"{cell}." if cell != "g1" else "") + f"L{n:016X}"


@dataclass
class CellHubs:
    """The fetch port for hubs of several cells: ``hub-<region>[.<cell>].test``. ``down``: hub
    names (``arn.ru1``, ``ams``) that refuse connections; ``lsn``: each cell's position."""

    down: set[str] = field(default_factory=set)
    lsn: dict[str, int] = field(default_factory=lambda: {"g1": 0x10, "ru1": 0x20, "g2": 0x30})
    status: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, HubRequest]] = field(default_factory=list)

    async def __call__(self, request: HubRequest, timeout_s: float) -> HubResponse:
        host = urlsplit(request.url).hostname or ""
        region, _, rest = host.removeprefix("hub-").partition(".")
        cell = rest.removesuffix("test").rstrip(".") or "g1"
        name = region if cell == "g1" else f"{region}.{cell}"
        self.seen.append((name, request))
        if name in self.down:
            raise FetchFailed("connection refused", sent=False)
        if request.write:
            self.lsn[cell] += 1
        headers = {"content-type": "application/json", "x-mb-hub": region,
                   "x-consistency-token": tok(cell, self.lsn[cell]), "x-replica-lag-ms": "3",
                   "x-mb-fleet-lease": "units=100; hold-ms=10000"}
        path = urlsplit(request.url).path
        if path == "/v1/batch":
            queries = msgspec.json.decode(request.body)["queries"]
            body = msgspec.json.encode({
                "results": [{"status": 200, "body": {"cell": cell, **q}} for q in queries],
                "consistency_token": tok(cell, self.lsn[cell])})
        else:
            body = msgspec.json.encode({"cell": cell, "region": region, "path": path})
        return HubResponse(self.status.get(name, 200), headers, body)

    def names(self) -> list[str]:
        return [n for n, r in self.seen if urlsplit(r.url).path.startswith("/v1/")]


@pytest.fixture
def rig() -> Any:
    r = make_rig(CellHubs(), cells=CELLS, cell_hubs=CELL_HUBS)  # type: ignore[arg-type]
    yield r
    r.close()


def hubs(rig: Rig) -> CellHubs:
    return rig.hubs  # type: ignore[return-value]


def problem(r: Any) -> dict[str, Any]:
    assert r.headers["content-type"] == "application/problem+json"
    return json.loads(r.body)  # type: ignore[no-any-return]


# Routing within the cell.

async def test_a_pinned_twin_goes_to_its_cells_nearest_hub_only(rig: Rig) -> None:
    r = await rig.call("GET", "/v1/twins/ru1~ada", token=token(), headers=NEAR_FRA)
    assert r.status == 200 and json.loads(r.body)["cell"] == "ru1"
    assert r.headers["x-served-by"] == "edge=ams; hub=fra; cell=ru1"
    r = await rig.call("GET", "/v1/twins/ru~ada", token=token(), headers=NEAR_ARN)
    assert r.headers["x-served-by"] == "edge=ams; hub=arn; cell=ru1"
    assert hubs(rig).names() == ["fra.ru1", "arn.ru1"]


async def test_failover_stays_in_the_cell_and_then_names_the_zone(rig: Rig) -> None:
    hubs(rig).down = {"arn.ru1"}
    r = await rig.call("GET", "/v1/twins/ru1~ada", token=token(), headers=NEAR_ARN)
    assert r.status == 200 and r.headers["x-served-by"] == "edge=ams; hub=fra; cell=ru1"
    hubs(rig).down = {"arn.ru1", "fra.ru1"}
    hubs(rig).seen.clear()
    r = await rig.call("GET", "/v1/twins/ru1~ada", token=token(), headers=NEAR_ARN)
    assert r.status == 503 and int(r.headers["retry-after"]) >= 1
    body = problem(r)
    assert body["zone"] == "ru" and body["cell"] == "ru1"
    assert body["detail"].startswith("zone ru cannot be reached now")
    assert r.headers["cache-control"] == "no-store"
    assert {n for n in hubs(rig).names()} <= {"arn.ru1", "fra.ru1"}  # never another cell's hub
    # Both circuits are open now: the next request is refused before any hub is tried.
    hubs(rig).seen.clear()
    r = await rig.call("GET", "/v1/twins/ru1~ada", token=token())
    assert r.status == 503 and problem(r)["zone"] == "ru" and hubs(rig).names() == []
    # ...while the home cell's hubs and twins are untouched.
    r = await rig.call("GET", "/v1/twins/ada", token=token())
    assert r.status == 200 and r.headers["x-served-by"] == "edge=ams; hub=ams"


async def test_a_global_cell_other_than_home_is_named_by_cell(rig: Rig) -> None:
    hubs(rig).down = {"iad.g2"}
    r = await rig.call("GET", "/v1/twins/g2~ada", token=token())
    assert r.status == 503 and problem(r)["cell"] == "g2"
    assert problem(r)["detail"].startswith("cell g2 cannot be reached now")
    assert "cache-control" not in r.headers  # global data: no-store is for pinned cells


async def test_the_home_cells_503_is_as_it_always_was(rig: Rig) -> None:
    hubs(rig).down = {"ams", "iad", "sin"}
    r = await rig.call("GET", "/v1/twins/ada", token=token())
    assert r.status == 503 and "zone" not in problem(r) and "cell" not in problem(r)
    # A write tried on no hub (every circuit open) made nothing stale here, as before cells.
    generation = await rig.edge.ports.cache.get("gen:twin:ada")
    r = await rig.call("PATCH", "/v1/twins/ada", token=token(), body=b"{}")
    assert r.status == 503 and await rig.edge.ports.cache.get("gen:twin:ada") == generation


async def test_a_mark_naming_nothing_is_a_404_before_any_hub(rig: Rig) -> None:
    r = await rig.call("GET", "/v1/twins/zz~ada", token=token())
    assert r.status == 404 and "'zz'" in problem(r)["detail"] and hubs(rig).seen == []


async def test_new_twins_go_to_their_zones_cells(rig: Rig) -> None:
    r = await rig.call("POST", "/v1/twins", token=token(), body=b'{"residency": "ru"}')
    assert r.status == 200 and json.loads(r.body)["cell"] == "ru1"
    assert r.headers["cache-control"] == "no-store"
    r = await rig.call("POST", "/v1/twins", token=token(), body=b'{"residency": "eu"}')
    assert r.status == 422 and "known zones: global, ru" in problem(r)["detail"]
    r = await rig.call("POST", "/v1/twins", token=token(),
                       body=b'{"twin_id": "ada", "residency": "ru"}')
    assert r.status == 422 and "pinned to zone ru" in problem(r)["detail"]
    assert hubs(rig).names() in (["arn.ru1"], ["fra.ru1"])


async def test_events_of_two_cells_are_refused_at_the_edge(rig: Rig) -> None:
    body = b'{"events": [{"twin_id": "a", "type": "x"}, {"twin_id": "ru1~b", "type": "x"}]}'
    r = await rig.call("POST", "/v1/events", token=token(), body=body)
    assert r.status == 422 and "split the events by residency" in problem(r)["detail"]
    assert hubs(rig).seen == []


# Pinned cells and the PoP's cache.

async def test_a_pinned_twin_is_never_cached_and_its_answers_say_no_store(rig: Rig) -> None:
    for _ in range(3):
        r = await rig.call("GET", "/v1/twins/ru1~ada", token=token())
        assert r.headers["x-cache"] == "MISS" and r.headers["cache-control"] == "no-store"
        assert "x-mb-fleet-lease" not in hubs(rig).seen[-1][1].headers  # no lease asked
    assert len(hubs(rig).names()) == 3
    assert rig.edge.fleet.held == 0  # the hub's lease was not kept either
    await rig.call("PATCH", "/v1/twins/ru1~ada", token=token(), body=b"{}")
    assert await rig.edge.ports.cache.get("gen:twin:ru1~ada") is None  # nothing to make stale
    # The home cell's twins are cached as ever.
    await rig.call("GET", "/v1/twins/ada", token=token())
    r = await rig.call("GET", "/v1/twins/ada", token=token())
    assert r.headers["x-cache"] == "HIT" and "cache-control" not in r.headers


async def test_no_store_is_added_to_what_the_hub_said(rig: Rig) -> None:
    from mbedge.answers import no_store

    for held, out in (("", "no-store"), ("private", "private, no-store"),
                      ("private, no-store", "private, no-store")):
        headers = {"cache-control": held} if held else {}
        no_store(headers)
        assert headers["cache-control"] == out


# Batches over several cells.

def batch_body(*items: tuple[str, dict[str, str]]) -> bytes:
    return msgspec.json.encode({"queries": [{"action": a, "params": p} for a, p in items]})


async def test_a_batch_over_cells_is_split_and_put_back_in_order(rig: Rig) -> None:
    items = [("get_twin_profile", {"twin_id": "ru1~a"}), ("get_wallet", {"wallet_id": "w"}),
             ("get_artifact", {"artifact_id": "ru~d"}), ("get_twin_profile", {"twin_id": "b"})]
    r = await rig.call("POST", "/v1/batch", token=token(), body=batch_body(*items),
                       headers=NEAR_ARN)
    assert r.status == 200
    answer = json.loads(r.body)
    assert [x["body"]["cell"] for x in answer["results"]] == ["ru1", "g1", "ru1", "g1"]
    assert [x["body"]["params"] for x in answer["results"]] == [p for _, p in items]
    assert answer["consistency_token"] == "L0000000000000010,ru1.L0000000000000020"
    assert r.headers["x-consistency-token"] == answer["consistency_token"]
    assert r.headers["x-served-by"] == "edge=ams; hub=arn,ams; cell=ru1,g1"
    assert r.headers["cache-control"] == "no-store"  # a pinned cell answered part of it
    assert r.headers["ratelimit-remaining"] == "96"  # four items, charged once at the PoP
    sent = {n: msgspec.json.decode(req.body)["queries"] for n, req in hubs(rig).seen}
    assert sent == {"arn.ru1": [{"action": a, "params": p} for a, p in (items[0], items[2])],
                    "ams": [{"action": a, "params": p} for a, p in (items[1], items[3])]}


async def test_a_batch_in_one_cell_is_forwarded_as_it_came(rig: Rig) -> None:
    body = batch_body(("get_twin_profile", {"twin_id": "ru1~a"}),
                      ("list_twin_grants", {"twin_id": "ru~a"}))
    r = await rig.call("POST", "/v1/batch", token=token(), body=body)
    assert r.status == 200 and hubs(rig).seen[-1][1].body == body
    assert r.headers["x-consistency-token"] == tok("ru1", 0x20)


async def test_a_split_batch_is_all_or_nothing(rig: Rig) -> None:
    body = batch_body(("get_twin_profile", {"twin_id": "a"}),
                      ("get_twin_profile", {"twin_id": "ru1~b"}))
    hubs(rig).status = {"ams": 429}
    r = await rig.call("POST", "/v1/batch", token=token(), body=body)
    assert r.status == 429  # the home cell's answer, whole
    assert [x["body"]["cell"] for x in json.loads(r.body)["results"]] == ["g1"]
    hubs(rig).down, hubs(rig).status = {"arn.ru1", "fra.ru1"}, {}
    r = await rig.call("POST", "/v1/batch", token=token(), body=body)
    assert r.status == 503 and problem(r)["zone"] == "ru"


# Session floors per cell.

async def test_the_floor_keeps_the_greatest_position_of_every_cell(rig: Rig) -> None:
    await rig.call("PATCH", "/v1/twins/ada", token=token(), body=b"{}")       # g1 at 0x11
    await rig.call("PATCH", "/v1/twins/ru1~ada", token=token(), body=b"{}")   # ru1 at 0x21
    await rig.call("GET", "/v1/twins/ada", token=token(), headers={"cache-control": "no-cache"})
    both = f"{tok('g1', 0x11)},{tok('ru1', 0x21)}"
    assert hubs(rig).seen[-1][1].headers["x-consistency-token"] == both
    # A caller's own token is merged with the floor, part by part.
    await rig.call("GET", "/v1/twins/ru1~ada", token=token(),
                   headers={"x-consistency-token": f"{tok('g1', 5)},{tok('ru1', 0x99)}"})
    assert hubs(rig).seen[-1][1].headers["x-consistency-token"] == (
        f"{tok('g1', 0x11)},{tok('ru1', 0x99)}")
    # A caller's token that already covers the floor goes on exactly as sent.
    mine = f"{tok('ru1', 0x40)},{tok('g1', 0x12)}"
    await rig.call("GET", "/v1/twins/ru1~ada", token=token(), headers={"x-consistency-token": mine})
    assert hubs(rig).seen[-1][1].headers["x-consistency-token"] == mine


async def test_a_newer_position_in_another_cell_does_not_skip_a_home_cache_entry(
        rig: Rig) -> None:
    await rig.call("GET", "/v1/twins/ada", token=token())  # cached at g1 0x10
    await rig.call("PATCH", "/v1/twins/ru1~ada", token=token(), body=b"{}")  # floor: ru1 0x21
    r = await rig.call("GET", "/v1/twins/ada", token=token())
    assert r.headers["x-cache"] == "HIT"  # the entry answers for g1, where nothing is newer
    await rig.call("PATCH", "/v1/twins/other", token=token(), body=b"{}")  # g1 at 0x11
    r = await rig.call("GET", "/v1/twins/ada", token=token())
    assert r.headers["x-cache"] == "MISS"


# Health of every cell's hubs.

async def test_probes_and_healthz_cover_every_cells_hubs(rig: Rig) -> None:
    hubs(rig).down = {"fra.ru1"}
    assert await rig.edge.probe_hubs() == {"ams": True, "iad": True, "sin": True,
                                           "ru1.arn": True, "ru1.fra": False, "g2.iad": True}
    r = await rig.call("GET", "/healthz")
    assert json.loads(r.body)["cells"] == {"ru1": {"arn": "closed", "fra": "open"},
                                           "g2": {"iad": "closed"}}
    rig.edge.hubs.apply({"ru1.fra": True, "sin": False})  # the Worker's KV snapshot
    assert rig.edge.hubs.snapshot()["ru1"]["fra"] == "open"  # cooling down: not moved
    assert rig.edge.ports.health.state("sin") == "open"


# Sockets.

def upgrade(path: str, query: str = "", **headers: str) -> EdgeRequest:
    return EdgeRequest("GET", path, {"authorization": f"Bearer {token()}", **headers},
                       query=query)


async def test_sockets_go_to_their_cells_hubs(rig: Rig) -> None:
    yjs = await plan_upgrade(rig.edge, upgrade("/v1/yjs/ru1~ada"), "w1")
    assert set(yjs.candidates) == {"arn", "fra"} and yjs.hubs.cell.name == "ru1"
    url, _ = hub_target(rig.edge, HopSigner(HOP_SECRET), yjs, "arn")
    assert url.startswith("http://hub-arn.ru1.test/v1/yjs/ru1~ada?mb_until=")
    realtime = await plan_upgrade(rig.edge, upgrade("/v1/realtime", "residency=ru"), "w1")
    assert realtime.hubs.cell.name == "ru1" and realtime.query.startswith("residency=ru&")
    home = await plan_upgrade(rig.edge, upgrade("/v1/realtime"), "w1")
    assert home.hubs.home and set(home.candidates) == {"ams", "iad", "sin"}
    with pytest.raises(Unprocessable, match="known zones"):
        await plan_upgrade(rig.edge, upgrade("/v1/realtime", "residency=eu"), "w1")
    with pytest.raises(NotFound):
        await plan_upgrade(rig.edge, upgrade("/v1/yjs/zz~ada"), "w1")
    hubs_down = rig.edge.hubs.of(CELLS[1]).health
    for region in ("arn", "fra"):
        hubs_down.record_failure(region, hard=True)
    with pytest.raises(Exception, match="zone ru cannot be reached now") as refused:
        await plan_upgrade(rig.edge, upgrade("/v1/yjs/ru1~ada"), "w1")
    assert getattr(refused.value, "extra", {}) == {"zone": "ru", "cell": "ru1"}
