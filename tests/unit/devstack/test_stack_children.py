"""What each child is started with: command, environment, who it runs as. No process is started."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import psutil

from devstack import apps, children, patroni, procs
from devstack.children import Sources
from devstack.health import HttpCheck, RedisCheck
from devstack.ports import PortPlan
from devstack.procs import ProcessRecord
from devstack.secrets import Secrets
from devstack.state import SERVICE_ORDER, StackState
from devstack.topology import build_topology

REGIONS = ("iad", "ams")  # iad first: the primary region is whichever comes first
SECRETS = Secrets(edge_hop_secret="e" * 20, central_hop_secret="c" * 20, jwt_hs256_secret="j" * 20)


def state(services: list[str], shards: int = 1) -> StackState:
    plan = PortPlan(base=25000, regions=REGIONS, central_shards=shards)
    return StackState(data_dir="/d", regions=list(REGIONS), services=services,
                      port_base=plan.base, topology=build_topology(plan))


def specs(services: list[str], run_as: procs.RunAs | None = None,
          shards: int = 1) -> dict[str, procs.ProcessSpec]:
    src = Sources(pg_bin=None, redis_server=None, run_as=run_as, secrets=SECRETS,
                  factories=apps.DEFAULT_FACTORIES)
    return children.build_specs(state(services, shards), Path("/d"), src)


def test_names_in_start_order() -> None:
    assert children.all_names(state(list(SERVICE_ORDER))) == [
        "pg-witness", "pg-primary", "pg-standby", "pg-iad", "pg-ams", "backup", "redis-iad",
        "redis-ams", "central", "index-iad", "index-ams", "hub-iad", "hub-ams", "edge-iad",
        "edge-ams"]
    assert list(specs(list(SERVICE_ORDER))) == children.all_names(state(list(SERVICE_ORDER)))


def test_central_shards_each_know_their_place_and_hubs_know_them_all_in_order() -> None:
    s, topo = specs(["central", "hubs"], shards=3), state([], shards=3).topology
    assert [n for n in s if n.startswith("central")] == ["central", "central-1", "central-2"]
    for k, name in enumerate(("central", "central-1", "central-2")):
        assert s[name].env["CENTRAL_SHARD"] == str(k)
        assert s[name].env["CENTRAL_SHARDS"] == "3"
        assert s[name].argv[s[name].argv.index("--port") + 1] == topo.writers[k].rsplit(":")[-1]
    assert s["hub-ams"].env["HUB_CENTRAL_URL"].split(",") == topo.writers


def test_http_services_wiring() -> None:
    s = specs(["central", "hubs", "edges"])
    topo = state([]).topology
    central, hub, edge = s["central"], s["hub-ams"], s["edge-ams"]
    assert central.argv == (sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                            "--host", "127.0.0.1", "--port", "25001", "--workers", "1",
                            "central.app:create_app")
    assert central.env["CENTRAL_DATABASE_URL"] == topo.postgres.primary
    assert central.env["CENTRAL_PRIMARY_REGION"] == "iad"
    assert central.env["CENTRAL_REGIONS"] == "iad,ams"
    assert hub.env["HUB_REPLICA_URL"] == topo.postgres.replicas["ams"]
    assert hub.env["HUB_REDIS_URL"] == topo.redis["ams"]
    assert hub.env["HUB_LIMITS_REDIS_URL"] == topo.redis["iad"]  # the first region's
    assert hub.env["HUB_CENTRAL_URL"] == topo.central
    assert hub.env["HUB_CENTRAL_SECRET"] == central.env["CENTRAL_HOP_SECRET"] == "c" * 20
    assert hub.env["HUB_HOP_SECRET"] == edge.env["EDGE_HOP_SECRET"] == "e" * 20
    assert hub.env["HUB_PRIMARY_REGION"] == "iad"
    assert msgspec.json.decode(edge.env["EDGE_HUBS"]) == topo.hubs
    assert edge.env["EDGE_JWT_HS256_SECRET"] == "j" * 20
    assert (edge.env["EDGE_JWT_ISSUER"], edge.env["EDGE_DEV_MODE"]) == ("memorybank-dev", "1")
    assert edge.argv[-1] == "mbasgi.app:create_app"
    for spec in (central, hub, edge):
        paths = spec.env["PYTHONPATH"].split(os.pathsep)
        assert {str(apps.REPO_ROOT / "edge"), str(apps.REPO_ROOT / "geo-routing")} <= set(paths)
        assert isinstance(spec.check, HttpCheck) and spec.check.url.endswith("/healthz")
        assert spec.run_as is None


def test_postgres_and_redis_commands() -> None:
    nobody = procs.RunAs("nobody", 65534, 65534)
    s = specs(["postgres", "redis"], run_as=nobody)
    primary, replica, witness, cache = s["pg-primary"], s["pg-ams"], s["pg-witness"], s["redis-ams"]
    # Patroni runs each node (it starts and watches Postgres), as the Postgres user.
    assert primary.argv[1:3] == ("-m", "patroni") and primary.argv[-1].endswith("primary.json")
    assert "raft_controller" in witness.argv[2]
    assert primary.run_as == nobody == witness.run_as and cache.run_as is None
    assert primary.check == HttpCheck("http://127.0.0.1:25006/health")
    assert replica.check == HttpCheck("http://127.0.0.1:25101/health")
    assert "PGHOST" not in primary.env
    assert cache.argv[cache.argv.index("--save") + 1] == ""
    assert cache.argv[cache.argv.index("--appendonly") + 1] == "no"
    assert cache.argv[cache.argv.index("--bind") + 1] == "127.0.0.1"
    assert cache.check == RedisCheck("127.0.0.1", 25041)


def test_patroni_configs() -> None:
    plan = PortPlan(base=25000, regions=REGIONS)
    by_name = {m.name: patroni.node_config(m, plan, Path("/pg"), Path("/bin"))
               for m in patroni.members(plan)}
    assert list(by_name) == ["primary", "standby", "iad", "ams"]
    for name, config in by_name.items():
        leads = name in ("primary", "standby")
        # Only the two central nodes may lead or be the synchronous standby; each is labelled
        # with its region (two regions: the primary in the first, the standby in the second).
        region = {"primary": "iad", "standby": "ams"}.get(name, name)
        assert config["tags"] == {"nofailover": not leads, "nosync": not leads, "region": region}
        assert ("self_addr" in config["raft"]) == leads  # replicas do not vote
        assert config["postgresql"]["data_dir"] == f"/pg/{name}"
    dcs = by_name["primary"]["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["primary_start_timeout"] == 0
    voters = {by_name["primary"]["raft"]["self_addr"], *by_name["primary"]["raft"]["partner_addrs"]}
    assert voters == {"127.0.0.1:25003", "127.0.0.1:25004", "127.0.0.1:25005"}
    assert patroni.witness_config(plan, Path("/pg"))["raft"]["self_addr"] == "127.0.0.1:25003"


def test_recycled_pid_is_not_ours() -> None:
    me = psutil.Process()
    record = ProcessRecord(name="x", pid=me.pid, create_time=me.create_time(), command=[], log="")
    assert procs.is_alive(record)
    recycled = msgspec.structs.replace(record, create_time=me.create_time() - 100)
    assert not procs.is_alive(recycled)
    procs.stop(recycled)  # must not signal us


def test_a_cells_services_are_told_their_cell_and_keep_awareness_in_their_zone() -> None:
    from devstack.cells import DEFAULT_FLEET, CellLinks

    fleet = DEFAULT_FLEET.to_json()
    home = state(list(SERVICE_ORDER))
    ru = msgspec.structs.replace(home, links=CellLinks(
        cell="ru1", fleet=fleet, edges={"iad": "http://pop-iad", "ams": "http://pop-ams"},
        limits_redis="redis://limits", secrets_dir="/d"))
    src = Sources(pg_bin=None, redis_server=None, run_as=None, secrets=SECRETS,
                  factories=apps.DEFAULT_FACTORIES)
    s = children.build_specs(ru, Path("/d/cells/ru1"), src)
    hub, central = s["hub-iad"].env, s["central"].env
    assert hub["HUB_CELL"] == central["CENTRAL_CELL"] == "ru1"
    assert hub["HUB_CELLS"] == central["CENTRAL_CELLS"] == fleet
    assert hub["HUB_LIMITS_REDIS_URL"] == "redis://limits"          # the fleet's limiter
    assert hub["HUB_RELAY_REDIS_URL"] == home.topology.redis["iad"]  # its own zone's Redis
    # A single-cell stack's services are told nothing: they serve the home cell as before.
    plain = specs(list(SERVICE_ORDER))
    assert "HUB_CELL" not in plain["hub-iad"].env and "EDGE_CELLS" not in plain["edge-iad"].env


def test_a_fleet_needs_its_home_cell_in_every_region() -> None:
    import pytest

    from devstack.cells import DEFAULT_FLEET, check_fleet
    from mbwire.cells import Cell, CellMap

    assert check_fleet(DEFAULT_FLEET) == ("ams", "iad", "sin", "mow")
    with pytest.raises(ValueError, match="home cell"):
        check_fleet(CellMap(cells=(Cell("g1", "global", ("ams",)),
                                   Cell("ru1", "ru", ("mow",)))))


def test_down_stops_in_waves_the_leader_after_its_peer_and_the_witness_last() -> None:
    from devstack.launcher import stop_waves

    current = state(list(SERVICE_ORDER))
    recorded = ["supervisor", *children.all_names(current)]
    apps_waves = [["edge-iad", "edge-ams"], ["index-iad", "index-ams", "hub-iad", "hub-ams"],
                  ["central"], ["redis-iad", "redis-ams"], ["backup"]]
    for leader, first_pg, last_pg in (("primary", "pg-standby", "pg-primary"),
                                      ("standby", "pg-primary", "pg-standby"),
                                      (None, "pg-standby", "pg-primary")):
        waves = stop_waves(current, recorded, leader)
        assert waves == [["supervisor"], *apps_waves,
                         sorted([first_pg, "pg-iad", "pg-ams"], key=recorded.index),
                         [last_pg], ["pg-witness"]]
    # Each child once, only those recorded; an empty wave is left out.
    partial = stop_waves(current, ["pg-witness", "pg-iad", "hub-ams"], "primary")
    assert partial == [["hub-ams"], ["pg-iad"], ["pg-witness"]]
