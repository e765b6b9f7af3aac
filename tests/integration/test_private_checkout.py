"""Set-up as root from a private directory: a checkout (and its .venv) under a 0700 directory,
with TMPDIR private too, still brings Postgres up under Patroni, which runs as ``nobody`` and
so can reach neither the checkout's packages nor the private temp dir (devstack.reachable,
postgres.shared_tmp). Before those, this failed with "Patroni runs as 'nobody' and cannot enter
...". Root only: as another user Postgres runs as that user and nothing is out of its reach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as nobody")

# Runs inside the private venv: one region's Postgres nodes under Patroni, then the leader.
_PROBE = """
from devstack.testing import running_stack
from devstack import patroni
with running_stack(services={"postgres"}, regions=("ams",)) as stack:
    print("leader", patroni.live_postgres(stack.topology().postgres).leader)
"""


def _copies() -> set[Path]:
    """The copies made for ``nobody`` (binaries, packages), named for the path copied from."""
    return {p for d in (Path("/var/tmp"), Path("/tmp"))
            for pattern in ("memorybank-pg-*", "memorybank-py-*") for p in d.glob(pattern)}


def test_postgres_under_patroni_starts_from_a_private_checkout() -> None:
    private = Path(tempfile.mkdtemp(prefix=".private-", dir=ROOT))  # 0700, same filesystem
    before = _copies()
    try:
        venv = private / "venv"
        # Hard links: a whole copy of .venv in a second or two, its files unchanged.
        subprocess.run(["cp", "-al", str(Path(sys.prefix)), str(venv)], check=True)
        tmp = private / "tmp"
        tmp.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["TMPDIR"] = str(tmp)
        done = subprocess.run([str(venv / "bin" / "python"), "-c", _PROBE], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "leader primary" in done.stdout, done.stdout
    finally:
        shutil.rmtree(private, ignore_errors=True)
        for made in _copies() - before:  # ours: the private path is new, so are their names
            shutil.rmtree(made, ignore_errors=True)
