"""What each child is started with: command, environment, who it runs as. No process is started."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import msgspec
import psutil

from devstack import apps, children, procs
from devstack.children import Sources
from devstack.health import HttpCheck, PgCheck, RedisCheck
from devstack.ports import PortPlan
from devstack.procs import ProcessRecord
from devstack.secrets import Secrets
from devstack.state import SERVICE_ORDER, StackState
from devstack.topology import build_topology

REGIONS = ("iad", "ams")  # iad first: the primary region is whichever comes first
SECRETS = Secrets(edge_hop_secret="e" * 20, central_hop_secret="c" * 20, jwt_hs256_secret="j" * 20)


def state(services: list[str]) -> StackState:
    plan = PortPlan(base=25000, regions=REGIONS)
    return StackState(data_dir="/d", regions=list(REGIONS), services=services,
                      port_base=plan.base, topology=build_topology(plan))


def specs(services: list[str], run_as: procs.RunAs | None = None) -> dict[str, procs.ProcessSpec]:
    src = Sources(pg_bin=None, redis_server=None, run_as=run_as, secrets=SECRETS,
                  factories=apps.DEFAULT_FACTORIES)
    return children.build_specs(state(services), Path("/d"), src)


def test_names_in_start_order() -> None:
    assert children.all_names(state(list(SERVICE_ORDER))) == [
        "pg-primary", "pg-iad", "pg-ams", "redis-iad", "redis-ams", "central",
        "hub-iad", "hub-ams", "edge-iad", "edge-ams"]
    assert list(specs(list(SERVICE_ORDER))) == children.all_names(state(list(SERVICE_ORDER)))


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
    assert edge.argv[-1] == "devstack.edge_local:create_app"
    for spec in (central, hub, edge):
        paths = spec.env["PYTHONPATH"].split(os.pathsep)
        assert {str(apps.REPO_ROOT / "edge"), str(apps.REPO_ROOT / "geo-routing")} <= set(paths)
        assert isinstance(spec.check, HttpCheck) and spec.check.url.endswith("/healthz")
        assert spec.run_as is None


def test_postgres_and_redis_commands() -> None:
    nobody = procs.RunAs("nobody", 65534, 65534)
    s = specs(["postgres", "redis"], run_as=nobody)
    primary, replica, cache = s["pg-primary"], s["pg-ams"], s["redis-ams"]
    assert Path(primary.argv[0]).name == "postgres"  # the postmaster itself, not pg_ctl
    assert "port=25000" in primary.argv and primary.stop_signal == signal.SIGINT
    assert primary.run_as == nobody and cache.run_as is None
    assert "primary_conninfo=host=127.0.0.1 port=25000 user=postgres application_name=ams" \
        in replica.argv
    assert "primary_slot_name=ams" in replica.argv
    assert isinstance(replica.check, PgCheck) and ":25021/" in replica.check.url
    assert cache.argv[cache.argv.index("--save") + 1] == ""
    assert cache.argv[cache.argv.index("--appendonly") + 1] == "no"
    assert cache.argv[cache.argv.index("--bind") + 1] == "127.0.0.1"
    assert cache.check == RedisCheck("127.0.0.1", 25041)


def test_recycled_pid_is_not_ours() -> None:
    me = psutil.Process()
    record = ProcessRecord(name="x", pid=me.pid, create_time=me.create_time(), command=[], log="")
    assert procs.is_alive(record)
    recycled = msgspec.structs.replace(record, create_time=me.create_time() - 100)
    assert not procs.is_alive(recycled)
    procs.stop(recycled)  # must not signal us
