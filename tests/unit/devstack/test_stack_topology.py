"""The topology and ``status --json``: exactly api.md's shape, plus ``central_shards`` and
``processes``."""

from __future__ import annotations

import msgspec

from devstack.children import ChildStatus, StackStatus
from devstack.ports import BLOCK_SIZE, MAX_CENTRAL_SHARDS, MAX_REGIONS, PortPlan
from devstack.topology import build_topology, url_of

PLAN = PortPlan(base=24000, regions=("ams", "iad", "sin"))


def test_status_json_shape() -> None:
    topo = build_topology(PLAN)
    children = [ChildStatus(name="pg-primary", state="running", pid=12, log="/l/pg-primary.log"),
                ChildStatus(name="hub-ams", state="crashed", pid=13, log="/l/hub-ams.log"),
                ChildStatus(name="edge-ams", state="stopped", pid=None, log="/l/edge-ams.log")]
    raw = msgspec.json.decode(msgspec.json.encode(
        StackStatus(topology=topo, children=children).report()))
    assert list(raw) == ["regions", "edges", "hubs", "central", "postgres", "redis",
                         "central_shards", "indexes", "processes"]
    assert raw["central_shards"] == [raw["central"]]  # one shard: "central" is all there is
    assert raw["regions"] == ["ams", "iad", "sin"]
    for key in ("edges", "hubs", "redis"):
        assert set(raw[key]) == {"ams", "iad", "sin"}
    # The contract's keys, and the HA topology's: each node, each member's Patroni REST API.
    assert set(raw["postgres"]) == {"primary", "replicas", "standby", "nodes", "patroni"}
    assert set(raw["postgres"]["patroni"]) == {"primary", "standby", "ams", "iad", "sin"}
    assert raw["postgres"]["patroni"]["ams"] == "http://127.0.0.1:24100"
    assert set(raw["postgres"]["replicas"]) == {"ams", "iad", "sin"}
    assert raw["central"] == "http://127.0.0.1:24001"
    assert raw["edges"]["iad"] == "http://127.0.0.1:24081"
    assert raw["hubs"]["sin"] == "http://127.0.0.1:24062"
    # Whichever of primary and standby accepts writes (libpq multi-host), never a demoted one.
    assert raw["postgres"]["primary"] == (
        "postgresql://postgres@127.0.0.1:24000,127.0.0.1:24002/memorybank"
        "?target_session_attrs=read-write&connect_timeout=3")
    assert raw["postgres"]["replicas"]["ams"] == "postgresql://postgres@127.0.0.1:24020/memorybank"
    assert raw["redis"]["ams"] == "redis://127.0.0.1:24040/0"
    assert raw["processes"]["hub-ams"] == {"state": "crashed", "pid": 13, "log": "/l/hub-ams.log",
                                           "listening": [], "restarts": 0, "region": "ams"}
    assert raw["processes"]["pg-primary"]["region"] == "ams"
    assert raw["processes"]["edge-ams"]["pid"] is None


def test_status_flags() -> None:
    topo = build_topology(PLAN)
    up = ChildStatus(name="central", state="running", pid=1, log="")
    down = ChildStatus(name="central", state="stopped", pid=None, log="")
    assert StackStatus(topology=topo, children=[up]).running
    assert not StackStatus(topology=topo, children=[up, down]).running
    assert StackStatus(topology=topo, children=[down]).stopped
    assert not StackStatus(topology=None, children=[]).running


def test_url_of_each_child() -> None:
    topo = build_topology(PLAN)
    assert url_of(topo, "pg-primary") == "postgresql://postgres@127.0.0.1:24000/memorybank"
    assert url_of(topo, "pg-standby") == topo.postgres.standby
    assert url_of(topo, "pg-iad") == topo.postgres.replicas["iad"]
    assert url_of(topo, "redis-sin") == topo.redis["sin"]
    assert url_of(topo, "central") == topo.central
    assert url_of(topo, "hub-ams") == topo.hubs["ams"]
    assert url_of(topo, "edge-ams") == topo.edges["ams"]


def test_central_shards_have_ports_of_their_own_and_the_first_is_central() -> None:
    plan = PortPlan(base=24000, regions=("ams", "iad", "sin"), central_shards=3)
    topo = build_topology(plan)
    assert topo.writers[0] == topo.central
    assert len(set(topo.writers)) == 3
    # The most shards and regions a stack runs: no port shared, all inside the block.
    widest = PortPlan(base=24000, regions=tuple(f"r{i}" for i in range(MAX_REGIONS)),
                      central_shards=MAX_CENTRAL_SHARDS)
    ports = widest.all_ports()
    assert len(ports) == len(set(ports))
    assert all(0 <= p - widest.base < BLOCK_SIZE for p in ports)
    assert [url_of(topo, n) for n in ("central", "central-1", "central-2")] == topo.writers
    assert url_of(topo, "central-3") == url_of(topo, "central-x") == ""
