"""Point-in-time recovery: a new Postgres cluster directory built from a cell's backup store
(devstack/backup.py) up to a moment: the closest base backup before the target, copied as barman
stored it (pg_basebackup's plain data directory), and every archived WAL segment from its start
on staged beside it (``barman_wal/``, the segment still being streamed included, as a complete
one), which Postgres replays up to the target (a time, an LSN, or the end of what was streamed)
and then promotes. This is what ``barman recover`` does for a local restore, without its rsync
(a system package we may not have): the copy is a directory's, and the WAL is found where barman
keeps it (``wals/`` and ``streaming/``, uncompressed). The directory is left ready to start as a
standalone primary (its own port, no synchronous standby, the backup's access rules), owned by
the user Postgres runs as; ``running`` starts it, waits until recovery is over and stops it.

What the restored cluster holds is what the cell's primary held then, personal data sealed: it
opens only with the cell's key store (``<cell dir>/keys/``), which is not in the backup, so a
twin erased since has rows that nobody can open. ``memorybank restore`` is the command; the
README's "Backups and point-in-time recovery" is the runbook (bringing a restored cluster in as
the cell's new primary)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import msgspec
import psycopg

from devstack import backup, backup_wal
from devstack.errors import ConfigError, StackError
from devstack.health import tail
from devstack.postgres import blocked_parent, find_bin_dir, reachable_bin_dir, tool_env
from devstack.procs import RunAs, unprivileged
from devstack.topology import HOST, PG_USER

DEFAULT_PORT = 5499
_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")
STAGED = "barman_wal"                # in the restored directory; removed once recovery ends
ORIGIN = "postgresql.auto.conf.origin"  # its own settings, given back by ``settle``


class Restored(msgspec.Struct, frozen=True, kw_only=True):
    """What ``restore`` built: a cluster directory ready to start, and how."""

    cell: str
    target: str                  # the new cluster's data directory
    backup_id: str               # the base backup it was built from
    to_time: str | None          # the recovery target (None and None: the end of the WAL)
    to_lsn: str | None
    port: int                    # written into it: where it listens once started
    postgres: str                # the postgres binary to start it with
    user: str | None             # who must run it (it owns the directory); None: us

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@{HOST}:{self.port}/memorybank"

    def start_command(self) -> str:
        """A shell command that starts it in the foreground."""
        run = f"runuser -u {self.user} -- " if self.user else ""
        return f"{run}{self.postgres} -D {self.target}"


def free_port() -> int:
    """A port nobody listens on now: where a restored cluster runs standalone."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def standalone_settings(target: Path, port: int) -> str:
    """Appended to the restored ``postgresql.auto.conf``: it listens on its own port, waits for
    no synchronous standby (the cell's Patroni set one) and reads its own copy of the access
    rules (Patroni's settings point at the old member's directory)."""
    return "\n".join([
        "# memorybank restore: a standalone primary until Patroni adopts it",
        f"port = {port}",
        f"listen_addresses = '{HOST}'",
        "unix_socket_directories = ''",
        "synchronous_standby_names = ''",
        f"hba_file = '{target / 'pg_hba.conf'}'",
        f"ident_file = '{target / 'pg_ident.conf'}'",
        "",
    ])


def recovery_settings(*, to_time: datetime | None, to_lsn: str | None) -> str:
    """Appended to the restored ``postgresql.auto.conf`` (with ``recovery.signal``): the WAL
    from the staged directory, the latest timeline (the cell's history as it went on through
    failovers: a target after one is reached), the target if any and promotion once it is
    reached (without one, at the end of the WAL). Raises ConfigError for a bad target."""
    if to_time is not None and to_lsn is not None:
        raise ConfigError("give a time or an LSN to restore to, not both")
    lines = ["# memorybank restore: recovery from the cell's backup store",
             f"restore_command = 'cp {STAGED}/%f \"%p\"'",
             f"recovery_end_command = 'rm -rf {STAGED}'",
             "recovery_target_timeline = 'latest'"]
    if to_time is not None:
        if to_time.tzinfo is None:
            raise ConfigError(f"{to_time.isoformat()} has no time zone: add one "
                              "(e.g. 2026-12-05T10:30:00Z or +02:00)")
        lines += [f"recovery_target_time = '{to_time.isoformat()}'",
                  "recovery_target_action = 'promote'"]
    elif to_lsn is not None:
        if not _LSN.match(to_lsn):
            raise ConfigError(f"{to_lsn!r} is not an LSN (like 0/1A2B3C4)")
        lines += [f"recovery_target_lsn = '{to_lsn}'", "recovery_target_action = 'promote'"]
    return "\n".join([*lines, ""])


def wal_to_stage(server: Path, begin_wal: str) -> dict[str, Path]:
    """What to stage for a restore from a backup that began in WAL segment ``begin_wal``: every
    timeline history file, every archived segment from there on (any later timeline too), those
    the receiver closed and barman has not archived yet, and the segment it is still writing
    (``<name>.partial``) where no complete one of that name exists. Bounded by the retention
    policy: the store holds a week of WAL."""
    start = int(begin_wal[:8], 16), int(begin_wal[8:], 16)
    out: dict[str, Path] = {}
    for path in sorted((server / "wals").glob("*/*")):
        name = path.name
        if _HISTORY.match(name):
            out[name] = path
        elif _SEGMENT.match(name) and (int(name[:8], 16), int(name[8:], 16)) >= start:
            out[name] = path
    # The receiver's own directory: segments and timeline histories it closed that barman's
    # maintenance has not yet moved into the archive, and the segment it is writing.
    streamed = sorted((server / "streaming").iterdir()) if (server / "streaming").is_dir() else []
    for path in streamed:
        if _HISTORY.match(path.name) or (_SEGMENT.match(path.name) and path.name >= begin_wal):
            out.setdefault(path.name, path)
    for path in streamed:
        name = path.name.removesuffix(".partial")
        if path.name.endswith(".partial") and _SEGMENT.match(name) and name >= begin_wal:
            out.setdefault(name, path)
    return out


def closest_before(done: list[backup.BaseBackup], *, to_time: datetime | None,
                   to_lsn: str | None) -> str:
    """The newest complete base backup that ended before the target, or the newest of all
    without one (barman's own choice, ``auto``, looks only on the target's timeline, so never
    before a failover)."""
    fits = [b for b in done if b.status == "DONE" and b.end_time and b.end_lsn and (
        datetime.fromisoformat(b.end_time) <= to_time if to_time is not None
        else to_lsn is None or backup_wal.lsn_int(b.end_lsn) <= backup_wal.lsn_int(to_lsn))]
    if not fits and not any(b.status == "DONE" for b in done):
        raise ConfigError("this cell has no complete base backup yet (`memorybank backup list`;"
                          " `memorybank backup now` takes one)")
    if not fits:
        raise ConfigError("no base backup of this cell ended before that target: the oldest "
                          "moment it can be restored to is its oldest backup's end "
                          "(`memorybank backup list`)")
    return max(fits, key=lambda b: backup_wal.lsn_int(b.end_lsn)).backup_id


def _prepare_target(target: Path, run_as: RunAs | None) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} exists and is not an empty directory: restore into a new one")
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if run_as is not None and (blocked := blocked_parent(target, run_as)):
        raise ConfigError(f"Postgres runs as {run_as.user!r} and could not enter {blocked}: "
                          "restore under a directory it can reach (e.g. /var/tmp)")


def restore(cell: backup.BackupCell, target: Path, *, to_time: datetime | None = None,
            to_lsn: str | None = None, backup_id: str | None = None,
            port: int = DEFAULT_PORT, pg_bin: Path | None = None) -> Restored:
    """Builds a new cluster directory ``target`` (new or empty) from ``cell``'s backups, up to
    ``to_time`` (aware) or ``to_lsn``, or to the end of the streamed WAL when neither is given;
    ``backup_id`` picks the base backup (default: the closest before the target, or the
    latest). Works with the cell's stack down (its backup store is files). Raises ConfigError
    for bad input, StackError when barman fails (its words included) or the cell's
    leader does not close its WAL segment."""
    target = target.resolve()
    recovery = recovery_settings(to_time=to_time, to_lsn=to_lsn)
    listed = backup.backups(cell)
    if backup_id is None:
        backup_id = closest_before(listed, to_time=to_time, to_lsn=to_lsn)
    chosen = next((b for b in listed if b.backup_id == backup_id and b.status == "DONE"), None)
    if chosen is None:
        raise ConfigError(f"cell {cell.name} has no complete base backup {backup_id!r} "
                          "(`memorybank backup list`)")
    run_as = unprivileged()
    _prepare_target(target, run_as)
    plan = backup_wal.plan_of(cell)
    if plan is not None:
        backup_wal.close_segment(cell, plan)  # the cell runs: everything written is archived
    server = cell.store / cell.name
    shutil.copytree(server / "base" / backup_id / "data", target, symlinks=True,
                    dirs_exist_ok=True)
    staged = target / STAGED
    staged.mkdir()
    for name, path in wal_to_stage(server, chosen.begin_wal).items():
        shutil.copyfile(path, staged / name)
    auto = target / "postgresql.auto.conf"
    if not auto.exists():
        auto.touch()
    shutil.copyfile(auto, target / ORIGIN)
    with auto.open("a") as conf:
        conf.write(recovery + standalone_settings(target, port))
    (target / "recovery.signal").touch()
    target.chmod(0o700)
    if run_as is not None:
        for path in [target, *target.rglob("*")]:
            os.lchown(path, run_as.uid, run_as.gid)
    return Restored(cell=cell.name, target=str(target), backup_id=backup_id,
                    to_time=to_time.isoformat() if to_time else None, to_lsn=to_lsn,
                    port=port,
                    postgres=str(reachable_bin_dir(find_bin_dir(pg_bin), run_as) / "postgres"),
                    user=run_as.user if run_as else None)


@contextlib.contextmanager
def running(restored: Restored, timeout_s: float = 300.0) -> Iterator[str]:
    """Starts the restored cluster (as its owner), waits until recovery is over and it takes
    writes, yields its URL, and stops it (fast shutdown) on the way out, even on failure."""
    run_as = unprivileged()
    log = Path(restored.target).with_suffix(".log")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [restored.postgres, "-D", restored.target], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=tool_env(), cwd="/", start_new_session=True,
            user=run_as.uid if run_as else None, group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise StackError(f"the restored cluster exited ({proc.returncode}); {log}:\n"
                                 + tail(log, 12))
            try:
                with psycopg.connect(restored.url, connect_timeout=2, autocommit=True) as conn:
                    row = conn.execute("select pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    break
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the restored cluster did not finish recovery in "
                                 f"{timeout_s:.0f} s; see {log}")
            time.sleep(0.2)
        yield restored.url
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: Postgres's fast shutdown
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def settle(restored: Restored) -> None:
    """Runs the restored cluster's recovery to its end (standalone), stops it, and gives it back
    its own settings (kept as ``postgresql.auto.conf.origin``): no recovery target,
    port or access-rule paths of the restore are left to follow it when Patroni adopts it as
    the cell's primary, nor into the replicas cloned from it."""
    with running(restored):
        pass
    target = Path(restored.target)
    shutil.copy(target / ORIGIN, target / "postgresql.auto.conf")
    (target / ORIGIN).unlink()
    run_as = unprivileged()
    if run_as is not None:
        os.lchown(target / "postgresql.auto.conf", run_as.uid, run_as.gid)


def remove(restored: Restored) -> None:
    """Deletes a restored cluster's directory and its log (a sandbox's, after a test)."""
    shutil.rmtree(restored.target, ignore_errors=True)
    Path(restored.target).with_suffix(".log").unlink(missing_ok=True)
