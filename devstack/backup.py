"""Each cell's backups: base backups and a continuous WAL archive of its Postgres cluster, kept by
barman (a maintained engine; barman-cloud is what CloudNativePG runs) in the cell's own backup
store, ``<cell dir>/backups/``: one barman configuration and server per cell, named for it, so a
cell's backups never leave its zone; never the key store (``<cell dir>/keys/``), so an erased
twin's rows in a backup stay ciphertext whose key is gone.

Streaming mode, no ssh and no ``archive_command``: ``pg_receivewal`` (``barman receive-wal``)
streams the WAL over a replication slot, ``pg_basebackup`` takes base backups. Both connect
through a libpq multi-host conninfo with ``target_session_attrs=read-write``, so they follow
Patroni's leader across a failover, and the slot is a Patroni permanent slot (devstack/patroni.py),
which exists on every member and is advanced there, so it survives one. The stack's ``backup``
child (devstack/backup_agent.py, supervised like the others) runs the receiver, barman's
maintenance and the base backups (the first at once, then every ``BACKUP_EVERY_S``).

Kept: ``RETENTION`` (a recovery window: any moment of the last 7 days can be restored) with at
least ``MIN_REDUNDANCY`` base backup; WAL older than the oldest backup kept is deleted with it.
That bounds the store: a week of WAL plus a backup a day. Checks: ``barman check`` (streaming,
slot, receiver, redundancy, failed backups) and ``pg_verifybackup`` of a backup against its
manifest (``check``). Where the receiver stands: devstack/backup_wal.py. Restores:
devstack/restore.py."""

from __future__ import annotations

import getpass
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from devstack.errors import StackError
from devstack.ports import PortPlan
from devstack.postgres import tool_env
from devstack.topology import HOST, PG_USER
from mbwire.cells import HOME

CHILD = "backup"                    # the stack's child running the agent (and its log's name)
STORE = "backups"                   # <cell dir>/backups/: barman's home for the cell
SLOT = "barman"                     # the replication slot pg_receivewal streams from
RECEIVER = "barman_receive_wal"     # pg_receivewal's application_name (barman's default)
RETENTION = "RECOVERY WINDOW OF 7 DAYS"
MIN_REDUNDANCY = 1
BACKUP_EVERY_S = 86_400.0           # a base backup a day: recovery replays at most a day of WAL
BACKUP_TIMEOUT_S = 3_600            # a base backup's WAL must be archived within this
STREAMING_SQL = ("select exists(select 1 from pg_stat_replication"
                 f" where application_name = '{RECEIVER}' and state = 'streaming')")



@dataclass(frozen=True, slots=True)
class BackupCell:
    """One cell's backup store, named for the cell (barman's server name)."""

    name: str
    data_dir: Path                  # the cell's stack directory

    @property
    def store(self) -> Path:
        return self.data_dir / STORE

    @property
    def config(self) -> Path:
        return self.store / "barman.conf"


def cell_of(data_dir: Path, cell: str | None) -> BackupCell:
    """The backup store of the cell whose stack lives in ``data_dir`` (``cell``: its name from
    the stack's links; None for a single-cell stack, which is the home cell)."""
    return BackupCell(cell or HOME, data_dir)


def conninfo(plan: PortPlan, database: str = "postgres") -> str:
    """The two members that may lead, in libpq's multi-host form: whichever leads now."""
    return (f"host={HOST},{HOST} port={plan.pg_primary},{plan.pg_standby} user={PG_USER} "
            f"dbname={database} target_session_attrs=read-write connect_timeout=3")


def render_config(cell: BackupCell, plan: PortPlan, bin_dir: Path) -> str:
    """barman's configuration for the cell: its global section (home, locks, log, the user we
    run as) and one server named for the cell."""
    info = conninfo(plan)
    return "\n".join([
        "# Written by `memorybank up` (devstack/backup.py) at each start; edits are lost.",
        "[barman]",
        f"barman_user = {getpass.getuser()}",
        f"barman_home = {cell.store}",
        f"barman_lock_directory = {cell.store / 'locks'}",
        f"log_file = {cell.store / 'barman.log'}",
        "log_level = INFO",
        "",
        f"[{cell.name}]",
        f"description = Memory Bank cell {cell.name}: its Postgres cluster's backups",
        f"conninfo = {info}",
        f"streaming_conninfo = {info}",
        "backup_method = postgres",
        "streaming_archiver = on",
        f"streaming_archiver_name = {RECEIVER}",
        f"slot_name = {SLOT}",
        "create_slot = manual",      # Patroni keeps it (a slot it does not know, it drops)
        "immediate_checkpoint = true",
        f"path_prefix = {bin_dir}",
        f"retention_policy = {RETENTION}",
        f"minimum_redundancy = {MIN_REDUNDANCY}",
        "wal_retention_policy = main",
        "",
    ])


def write_config(cell: BackupCell, plan: PortPlan, bin_dir: Path) -> Path:
    """The cell's store (0700: it holds the cell's data, as ciphertext where personal) and its
    configuration, rewritten at each start (the Postgres binaries may move between runs)."""
    cell.store.mkdir(mode=0o700, parents=True, exist_ok=True)
    (cell.store / "locks").mkdir(exist_ok=True)
    partial = cell.config.with_suffix(".partial")
    partial.write_text(render_config(cell, plan, bin_dir))
    partial.replace(cell.config)
    return cell.config


def barman_argv(cell: BackupCell, *args: str) -> list[str]:
    return [sys.executable, "-m", "barman.cli", "-c", str(cell.config), *args]


def barman(cell: BackupCell, *args: str,
           timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Runs one barman command for the cell; StackError when it fails (with what it said)."""
    if not cell.config.is_file():
        raise StackError(f"cell {cell.name} has no backup store in {cell.store} (a stack from "
                         "before backups, or one run without the backups service): "
                         "`memorybank up` makes it")
    done = subprocess.run(barman_argv(cell, *args), capture_output=True, text=True,
                          env=tool_env(), timeout=timeout, check=False)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()[-8:]
        raise StackError(f"barman {' '.join(args)} failed for cell {cell.name}: "
                         + " | ".join(said))
    return done


def barman_json(cell: BackupCell, *args: str, timeout: float = 120.0) -> Any:
    return msgspec.json.decode(barman(cell, "-f", "json", *args, timeout=timeout).stdout)


class BaseBackup(msgspec.Struct, frozen=True, kw_only=True):
    """One base backup as barman describes it."""

    backup_id: str
    status: str                     # DONE, WAITING_FOR_WALS, STARTED, FAILED, ...
    begin_time: str = ""
    end_time: str = ""
    size_bytes: int = 0             # the data directory as copied
    begin_lsn: str = ""
    end_lsn: str = ""
    begin_wal: str = ""             # the WAL segment it began in: a restore replays from there
    timeline: int | None = None
    retention: str = ""             # VALID, OBSOLETE, KEEP..., as the retention policy sees it


def parse_show(raw: dict[str, Any]) -> BaseBackup:
    """A backup from ``barman -f json show-backup``'s answer for one server."""
    base = raw.get("base_backup_information") or {}
    return BaseBackup(
        backup_id=str(raw["backup_id"]), status=str(raw.get("status", "")),
        begin_time=str(base.get("begin_time", "")), end_time=str(base.get("end_time", "")),
        size_bytes=int(base.get("backup_size_bytes") or 0),
        begin_lsn=str(base.get("begin_lsn", "")), end_lsn=str(base.get("end_lsn", "")),
        begin_wal=str(base.get("begin_wal", "")),
        timeline=base.get("timeline"),
        retention=str((raw.get("catalog_information") or {}).get("retention_policy", "")))


def backups(cell: BackupCell) -> list[BaseBackup]:
    """The cell's base backups, newest first."""
    listed = barman_json(cell, "list-backups", cell.name).get(cell.name, [])
    return [parse_show(barman_json(cell, "show-backup", cell.name, str(b["backup_id"]))
                       [cell.name]) for b in listed]


def take(cell: BackupCell, timeout_s: int = BACKUP_TIMEOUT_S) -> BaseBackup:
    """A base backup now, returned once it is complete with every WAL segment it needs."""
    barman(cell, "backup", "--wait", "--wait-timeout", str(timeout_s), cell.name,
           timeout=timeout_s + 60)
    return parse_show(barman_json(cell, "show-backup", cell.name, "latest")[cell.name])


def check(cell: BackupCell) -> list[tuple[str, bool, str]]:
    """barman's checks of the cell's backups (name, passed, hint), then ``pg_verifybackup`` of
    its latest base backup against the backup's manifest."""
    done = subprocess.run(barman_argv(cell, "-f", "json", "check", cell.name),
                          capture_output=True, text=True, env=tool_env(), timeout=120,
                          check=False)
    try:
        found = msgspec.json.decode(done.stdout).get(cell.name, {})
    except msgspec.DecodeError:
        return [("barman check", False, (done.stdout + done.stderr).strip()[-400:])]
    results = [(name, item.get("status") == "OK", str(item.get("hint", "")))
               for name, item in sorted(found.items())]
    if any(b.status == "DONE" for b in backups(cell)):
        try:
            said = barman_json(cell, "verify-backup", cell.name, "latest").get("_INFO", [])
            results.append(("pg_verifybackup of the latest backup", True, str(said[-1:])))
        except StackError as exc:
            results.append(("pg_verifybackup of the latest backup", False, str(exc)))
    return results
