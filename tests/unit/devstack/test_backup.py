"""The pure parts of each cell's backups (devstack/backup.py, backup_agent.py, restore.py): the
barman configuration a cell gets, the Patroni slot, which backup a restore starts from, what a
restored cluster is told, when the agent takes a base backup, and the CLI's arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack import backup, backup_agent, backup_wal, children, cli, patroni, restore
from devstack.errors import ConfigError
from devstack.health import PgQueryCheck
from devstack.ports import PortPlan
from devstack.state import SERVICE_ORDER, StackState
from devstack.topology import build_topology

PLAN = PortPlan(base=24000, regions=("ams", "iad"))
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def done(backup_id: str, ended: datetime, end_lsn: str, status: str = "DONE") -> backup.BaseBackup:
    return backup.BaseBackup(backup_id=backup_id, status=status, end_time=ended.isoformat(),
                             end_lsn=end_lsn, begin_time=ended.isoformat())


def test_each_cell_has_its_own_store_beside_it_never_the_key_store() -> None:
    cell = backup.cell_of(Path("/d/cells/ru1"), "ru1")
    text = backup.render_config(cell, PLAN, Path("/pg/bin"))
    assert cell.store == Path("/d/cells/ru1/backups") and cell.config.parent == cell.store
    assert "[ru1]" in text and "barman_home = /d/cells/ru1/backups" in text
    assert "keys" not in text
    assert backup.cell_of(Path("/d"), None).name == "g1"  # a single-cell stack: the home cell


def test_the_connection_follows_the_leader_and_streams_over_the_slot() -> None:
    text = backup.render_config(backup.cell_of(Path("/d"), None), PLAN, Path("/pg/bin"))
    info = "host=127.0.0.1,127.0.0.1 port=24000,24002 user=postgres dbname=postgres " \
           "target_session_attrs=read-write connect_timeout=3"
    for line in (f"conninfo = {info}", f"streaming_conninfo = {info}", "backup_method = postgres",
                 "streaming_archiver = on", f"slot_name = {backup.SLOT}", "create_slot = manual",
                 "path_prefix = /pg/bin", f"retention_policy = {backup.RETENTION}",
                 f"minimum_redundancy = {backup.MIN_REDUNDANCY}"):
        assert line in text.splitlines(), line
    assert backup.RETENTION == "RECOVERY WINDOW OF 7 DAYS" and backup.MIN_REDUNDANCY == 1


def test_patroni_keeps_the_slot_permanent_only_while_backups_run() -> None:
    member = patroni.members(PLAN)[0]
    on = patroni.node_config(member, PLAN, Path("/pg"), Path("/bin"), backups=True)
    off = patroni.node_config(member, PLAN, Path("/pg"), Path("/bin"), backups=False)
    assert on["bootstrap"]["dcs"]["slots"] == {backup.SLOT: {"type": "physical"}}
    assert off["bootstrap"]["dcs"]["slots"] == {}
    assert patroni.backup_slots(False) == {backup.SLOT: None}  # PATCH /config removes it


def test_the_agent_is_a_child_of_the_stack_healthy_once_it_streams() -> None:
    state = StackState(data_dir="/d", regions=["ams", "iad"], services=list(SERVICE_ORDER),
                       port_base=PLAN.base, topology=build_topology(PLAN))
    assert children.names_by_service(state)["backups"] == ["backup"]
    spec = children.backup_spec(state, Path("/d"))
    assert spec.argv[1:3] == ("-m", "devstack.backup_agent") and "g1" in spec.argv
    assert isinstance(spec.check, PgQueryCheck) and backup.RECEIVER in spec.check.sql
    without_pg = StackState(data_dir="/d", regions=["ams"], services=["backups", "redis"],
                            port_base=PLAN.base, topology=build_topology(PLAN))
    assert children.names_by_service(without_pg)["backups"] == []


def test_a_base_backup_is_due_when_none_or_the_newest_is_a_day_old() -> None:
    assert backup_agent.backup_due([], NOW)
    fresh = done("b1", NOW - timedelta(hours=3), "0/3000000")
    stale = done("b0", NOW - timedelta(days=1, seconds=1), "0/2000000")
    assert not backup_agent.backup_due([fresh, stale], NOW)
    assert backup_agent.backup_due([stale], NOW)
    assert not backup_agent.backup_due([done("b2", NOW, "", status="STARTED"), stale], NOW)
    assert backup_agent.backup_due([done("b3", NOW, "0/1", status="FAILED")], NOW)


def test_a_restore_starts_from_the_newest_backup_that_ended_before_its_target() -> None:
    old, new = done("old", NOW - timedelta(days=2), "0/2000000"), done("new", NOW, "0/9000000")
    listed = [new, old, done("wip", NOW, "", status="WAITING_FOR_WALS")]
    assert restore.closest_before(listed, to_time=NOW - timedelta(hours=1), to_lsn=None) == "old"
    assert restore.closest_before(listed, to_time=NOW, to_lsn=None) == "new"
    assert restore.closest_before(listed, to_time=None, to_lsn="0/8FFFFFF") == "old"
    assert restore.closest_before(listed, to_time=None, to_lsn="1/0") == "new"
    assert restore.closest_before(listed, to_time=None, to_lsn=None) == "new"  # the latest
    with pytest.raises(ConfigError, match="oldest"):
        restore.closest_before(listed, to_time=NOW - timedelta(days=3), to_lsn=None)
    with pytest.raises(ConfigError, match="no complete base backup"):
        restore.closest_before(listed[2:], to_time=None, to_lsn=None)


def test_recovery_follows_the_latest_timeline_to_its_target_then_promotes() -> None:
    at = restore.recovery_settings(to_time=NOW, to_lsn=None).splitlines()
    assert "restore_command = 'cp barman_wal/%f \"%p\"'" in at
    assert "recovery_end_command = 'rm -rf barman_wal'" in at
    assert "recovery_target_timeline = 'latest'" in at
    assert f"recovery_target_time = '{NOW.isoformat()}'" in at
    assert "recovery_target_action = 'promote'" in at
    lsn = restore.recovery_settings(to_time=None, to_lsn="0/1A2B")
    assert "recovery_target_lsn = '0/1A2B'" in lsn and "recovery_target_time " not in lsn
    end = restore.recovery_settings(to_time=None, to_lsn=None)  # the end of the WAL
    assert "recovery_target" not in end.replace("recovery_target_timeline", "")


def test_a_restore_stages_the_wal_from_its_backup_on_the_partial_segment_included(
        tmp_path: Path) -> None:
    def put(rel: str) -> None:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    for rel in ("wals/0000000100000000/000000010000000000000004",   # before the backup
                "wals/0000000100000000/000000010000000000000005",   # it began here
                "wals/0000000100000000/000000010000000000000006",
                "wals/0000000200000000/00000002.history",
                "wals/0000000200000000/000000020000000000000006",   # after a failover
                "wals/0000000100000000/000000010000000000000006.partial.bak",  # not WAL
                "streaming/000000020000000000000006.partial",     # closed since: not this one
                "streaming/000000020000000000000007",             # closed, not yet archived
                "streaming/00000003.history",                     # a switchover just now
                "streaming/000000020000000000000008.partial"):    # being streamed
        put(rel)
    staged = restore.wal_to_stage(tmp_path, "000000010000000000000005")
    assert sorted(staged) == ["000000010000000000000005", "000000010000000000000006",
                              "00000002.history", "000000020000000000000006",
                              "000000020000000000000007", "000000020000000000000008",
                              "00000003.history"]
    assert staged["000000020000000000000006"].parent.name == "0000000200000000"
    assert staged["000000020000000000000007"].parent.name == "streaming"
    assert staged["000000020000000000000008"].name.endswith(".partial")


@pytest.mark.parametrize("kwargs, message", [
    ({"to_time": datetime(2026, 12, 5, 12, 0), "to_lsn": None}, "time zone"),
    ({"to_time": None, "to_lsn": "twelve"}, "not an LSN"),
    ({"to_time": NOW, "to_lsn": "0/1"}, "not both"),
])
def test_a_bad_target_is_refused_before_anything_is_touched(kwargs: dict[str, object],
                                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        restore.recovery_settings(**kwargs)  # type: ignore[arg-type]


def test_a_restored_cluster_stands_alone() -> None:
    text = restore.standalone_settings(Path("/r/x"), 25499)
    assert "port = 25499" in text and "synchronous_standby_names = ''" in text
    assert "hba_file = '/r/x/pg_hba.conf'" in text and "listen_addresses = '127.0.0.1'" in text
    done_ = restore.Restored(cell="g1", target="/r/x", backup_id="b", to_time=None, to_lsn=None,
                             port=25499, postgres="/bin/postgres", user="nobody")
    assert done_.start_command() == "runuser -u nobody -- /bin/postgres -D /r/x"
    assert done_.url == "postgresql://postgres@127.0.0.1:25499/memorybank"


def test_backup_show_is_read_into_a_base_backup() -> None:
    raw = {"backup_id": "20261205T003022", "status": "DONE",
           "base_backup_information": {"begin_time": "2026-12-05 00:30:22+00:00",
                                       "end_time": "2026-12-05 00:30:23+00:00",
                                       "backup_size_bytes": 30568661, "begin_lsn": "0/8000028",
                                       "end_lsn": "0/9000000", "timeline": 1},
           "catalog_information": {"retention_policy": "VALID"}}
    parsed = backup.parse_show(raw)
    assert parsed.size_bytes == 30568661 and parsed.end_lsn == "0/9000000"
    assert parsed.retention == "VALID" and parsed.timeline == 1
    assert backup_wal.lsn_int("1/0") == 1 << 32 and backup_wal.lsn_int("0/9000000") == 0x9000000


def test_cli_backup_and_restore_arguments() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["backup", "list", "--cell", "ru1", "--json"]).cell == "ru1"
    assert parser.parse_args(["backup", "now"]).verb == "now"
    args = parser.parse_args(["restore", "--to-time", "2026-12-05T10:30:00Z", "--target", "/r"])
    assert args.to_time == datetime(2026, 12, 5, 10, 30, tzinfo=UTC) and args.to_lsn is None
    assert parser.parse_args(["restore", "--latest", "--target", "/r"]).latest
    for bad in (["restore", "--target", "/r"],                       # no target point
                ["restore", "--to-time", "2026-12-05T10:30:00", "--target", "/r"],  # naive
                ["restore", "--to-lsn", "0/1", "--latest", "--target", "/r"]):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(bad)
        assert exit_.value.code == 2


def test_the_agent_stops_at_once_even_inside_a_long_barman_call(tmp_path: Path) -> None:
    """A SIGTERM while a tick blocks (``barman cron`` may take minutes) ends the agent within a
    second, its blocking child killed and its cleanup run: not after the stack's grace period."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = (
        "import subprocess, devstack.backup_agent as a\n"
        "a.Agent.tick = lambda self, now: subprocess.run(['sleep', '60'])\n"
        "a.Agent.stop = lambda self: print('cleanup ran', flush=True)\n"
        f"a.main(['--data-dir', {str(tmp_path)!r}, '--cell', 'g1', '--base', '24000',"
        " '--regions', 'ams'])\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        assert "keeping the backups" in proc.stdout.readline()  # its handlers are in place
        time.sleep(0.3)  # inside the blocking call
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0 and "cleanup ran" in out and "stopped" in out
    assert took < 5
    def in_its_session(p: psutil.Process) -> bool:
        try:
            return os.getsid(p.pid) == proc.pid
        except OSError:
            return False
    assert not [p for p in psutil.process_iter() if in_its_session(p)]  # its sleep went too
