"""The launcher against real processes: Postgres primary + streaming replicas + Redis from one
stack for the whole module (tests run in file order and each leaves it running), and the HTTP path
with stand-in ASGI apps in a second, Postgres-free stack."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import psutil
import psycopg
import pytest

from devstack import cli, state
from devstack.errors import ConfigError, StartError
from devstack.launcher import Stack
from devstack.postgres import pg_data_root
from devstack.procs import unprivileged
from devstack.testing import ECHO_FACTORY, running_stack

pytestmark = pytest.mark.integration

REGIONS = ("ams", "iad")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Unsupervised: these tests watch a killed child stay crashed until `up`.
    with running_stack(services={"postgres", "redis"}, regions=REGIONS,
                       supervise=False) as running:
        yield running


def pids(stack: Stack) -> dict[str, int | None]:
    return {c.name: c.pid for c in stack.status().children}


def gone(proc: psutil.Process) -> bool:
    """Exited (a zombie waiting for PID 1 to reap it counts: it runs nothing)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for_row(url: str, marker: str, timeout: float = 10.0) -> None:
    """Replicas are asynchronous: poll until the row (and its table) has been replayed."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            try:
                if conn.execute("select 1 from probe where marker = %s", (marker,)).fetchone():
                    return
            except psycopg.errors.UndefinedTable:
                pass
            assert time.monotonic() < deadline, f"{marker} never reached {url}"
            time.sleep(0.02)


def write_row(stack: Stack) -> str:
    marker = uuid.uuid4().hex
    with psycopg.connect(stack.topology().postgres.primary, autocommit=True) as conn:
        conn.execute("create table if not exists probe (marker text primary key)")
        conn.execute("insert into probe values (%s)", (marker,))
    return marker


def test_everything_comes_up(stack: Stack) -> None:
    status = stack.status()
    assert status.running
    assert [c.name for c in status.children] == [
        "pg-witness", "pg-primary", "pg-standby", "pg-ams", "pg-iad", "redis-ams", "redis-iad"]


def test_replication_names_the_regions(stack: Stack) -> None:
    with psycopg.connect(stack.topology().postgres.primary, autocommit=True) as conn:
        rows = conn.execute("select application_name, state, sync_state"
                            " from pg_stat_replication").fetchall()
        settings: dict[str, str] = dict(conn.execute(
            "select name, setting from pg_settings where name = any(%s)",
            (["synchronous_commit", "fsync", "wal_level", "listen_addresses",
              "unix_socket_directories"],)).fetchall())
    # Patroni names each member's stream; only the standby is synchronous.
    assert sorted(rows) == [("ams", "streaming", "async"), ("iad", "streaming", "async"),
                            ("standby", "streaming", "sync")]
    assert settings == {"synchronous_commit": "on", "fsync": "on", "wal_level": "replica",
                        "listen_addresses": "127.0.0.1", "unix_socket_directories": ""}


def test_a_write_on_the_primary_reaches_every_replica(stack: Stack) -> None:
    marker = write_row(stack)
    for region in REGIONS:
        wait_for_row(stack.topology().postgres.replicas[region], marker)
        with psycopg.connect(stack.topology().postgres.replicas[region]) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)


def test_redis_is_a_cache(stack: Stack) -> None:
    import redis

    for region in REGIONS:
        client = redis.Redis.from_url(stack.topology().redis[region])
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()


def test_up_on_a_running_stack_changes_nothing(stack: Stack) -> None:
    before = pids(stack)
    again = Stack(stack.data_dir)  # as a second `memorybank up` would
    assert again.up() == stack.topology()
    assert pids(stack) == before
    assert cli.main(["up", "--data-dir", str(stack.data_dir)]) == 0
    assert pids(stack) == before


def test_up_with_other_regions_is_refused(stack: Stack) -> None:
    before = pids(stack)
    assert cli.main(["up", "--regions", "ams,sin", "--data-dir", str(stack.data_dir)]) == 1
    with pytest.raises(ConfigError, match="down"):
        Stack(stack.data_dir, ("ams", "sin")).up()
    assert pids(stack) == before


def test_status_json(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--json", "--data-dir", str(stack.data_dir)]) == 0
    report = msgspec.json.decode(capsys.readouterr().out)
    assert set(report) == {"regions", "edges", "hubs", "central", "postgres", "redis",
                           "central_shards", "indexes", "processes"}
    assert report["central_shards"][0] == report["central"]
    assert set(report["indexes"]) == set(report["hubs"])  # one index service per hub
    assert report["postgres"]["replicas"] == stack.topology().postgres.replicas
    # Who leads now, and every member's role, as Patroni reports them (what the drills read).
    assert report["postgres"]["leader"] == "primary"
    roles = {name: m["role"] for name, m in report["postgres"]["members"].items()}
    assert roles == {"primary": "leader", "standby": "sync_standby", "ams": "replica",
                     "iad": "replica"}
    assert {p["state"] for p in report["processes"].values()} == {"running"}


def test_a_killed_child_shows_as_crashed_and_up_restarts_it(stack: Stack) -> None:
    victim = pids(stack)["redis-iad"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(victim)], timeout=5)
    states = {c.name: c.state for c in stack.status().children}
    assert states["redis-iad"] == "crashed"
    assert {s for n, s in states.items() if n != "redis-iad"} == {"running"}
    assert cli.main(["status", "--data-dir", str(stack.data_dir)]) == 1
    stack.up()  # restarts only what is down
    assert stack.status().running
    assert pids(stack)["redis-iad"] != victim


def test_stop_and_start_one_replica(stack: Stack) -> None:
    stack.stop_process("pg-iad")
    assert {c.name: c.state for c in stack.status().children}["pg-iad"] == "stopped"
    marker = write_row(stack)  # written while the replica is away; its slot keeps the WAL
    stack.start_process("pg-iad")
    wait_for_row(stack.topology().postgres.replicas["iad"], marker)


def test_down_stops_everything_and_up_keeps_the_data(stack: Stack) -> None:
    marker = write_row(stack)
    recorded = state.load(stack.data_dir)
    assert recorded is not None
    topology = stack.topology()
    stack.down()
    for record in recorded.processes:
        assert not psutil.pid_exists(record.pid) or (
            psutil.Process(record.pid).create_time() != record.create_time
            or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE)
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if str(stack.data_dir) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
    assert stack.status().stopped
    assert cli.main(["status", "--data-dir", str(stack.data_dir)]) == cli.EXIT_NOT_RUNNING

    assert stack.up() == topology  # same ports, same replicas: no new base backup
    for url in (topology.postgres.primary, *topology.postgres.replicas.values()):
        wait_for_row(url, marker)


# -- the HTTP path, with stand-in apps (no Postgres needed) ------------------------------------

STAND_INS = {"central": ECHO_FACTORY, "hubs": ECHO_FACTORY, "edges": ECHO_FACTORY}


def test_http_services_come_up_wired_and_restart() -> None:
    with running_stack(services={"central", "hubs", "edges"}, regions=REGIONS,
                       factories=STAND_INS) as http_stack:
        topo, secrets = http_stack.topology(), http_stack.secrets()
        assert len(topo.writers) == 2  # the default: a sharded central, as in production
        for url in (*topo.writers, *topo.hubs.values(), *topo.edges.values()):
            assert httpx.get(f"{url}/healthz").status_code == 200
        hub_env = httpx.get(f"{topo.hubs['iad']}/env").json()
        assert hub_env["HUB_CENTRAL_URL"] == ",".join(topo.writers)
        assert [httpx.get(f"{u}/env").json()["CENTRAL_SHARD"] for u in topo.writers] == ["0", "1"]
        assert hub_env["HUB_LIMITS_REDIS_URL"] == topo.redis["ams"]
        assert hub_env["HUB_HOP_SECRET"] == secrets.edge_hop_secret
        assert httpx.get(f"{topo.edges['ams']}/env").json()["EDGE_POP"] == "ams"

        granian = psutil.Process(pids(http_stack)["hub-ams"] or 0)
        workers = granian.children(recursive=True)
        assert workers  # granian's worker process
        http_stack.stop_process("hub-ams")
        assert all(gone(p) for p in [granian, *workers])
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{topo.hubs['ams']}/healthz")
        http_stack.start_process("hub-ams")
        assert httpx.get(f"{topo.hubs['ams']}/healthz").status_code == 200
        everything = [psutil.Process(c.pid or 0) for c in http_stack.status().children]
        everything += [w for p in everything for w in p.children(recursive=True)]
    assert all(gone(p) for p in everything)


def test_the_shard_count_is_the_stacks_until_down() -> None:
    with running_stack(services={"central", "hubs"}, regions=("ams",), factories=STAND_INS,
                       central_shards=3) as stack:
        topo = stack.topology()
        assert len(topo.writers) == 3
        assert [httpx.get(f"{u}/env").json()["CENTRAL_SHARD"] for u in topo.writers] == \
            ["0", "1", "2"]
        assert httpx.get(f"{topo.hubs['ams']}/env").json()["HUB_CENTRAL_URL"] == \
            ",".join(topo.writers)
        # Asking a running stack for another count is refused (ports and homes would move).
        with pytest.raises(ConfigError, match="central shard"):
            Stack(stack.data_dir, factories=STAND_INS, central_shards=1).up()
        # The next `up` without a count keeps the stack's, and starts the shard that is down.
        stack.stop_process("central-2")
        assert len(Stack(stack.data_dir, factories=STAND_INS).up().writers) == 3
        assert httpx.get(f"{topo.writers[2]}/healthz").status_code == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands Postgres to nobody")
def test_a_data_dir_nobody_can_reach_still_runs(tmp_path: Path) -> None:
    # pytest's tmp_path lives under /tmp/pytest-of-root, which is 0o700: Postgres (as nobody)
    # keeps its clusters under the temp dir instead, the same place on every up.
    data_dir = tmp_path / "stack"
    stack = Stack(data_dir, ("ams",), services={"postgres"})
    outside = pg_data_root(data_dir.resolve(), unprivileged())
    try:
        topo = stack.up()
        assert not outside.is_relative_to(tmp_path)
        assert (outside / "primary" / "PG_VERSION").exists()
        with psycopg.connect(topo.postgres.replicas["ams"]) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)
    finally:
        stack.down()
        shutil.rmtree(outside, ignore_errors=True)
    assert stack.status().stopped


def test_a_service_that_fails_is_named_with_its_log() -> None:
    with pytest.raises(StartError) as failure, running_stack(
        services={"central"}, regions=("ams",),
        factories={"central": "devstack.testing:no_such_factory"},
    ):
        pass
    assert failure.value.name == "central"
    assert "exited with code" in failure.value.reason
    assert "no_such_factory" in failure.value.log_tail
