"""Every Redis of the stack is bounded and never evicts (regional.cache says why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.redis import MAXMEMORY_ENV, server_spec


def option(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_redis_runs_with_maxmemory_and_noeviction(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.delenv(MAXMEMORY_ENV, raising=False)
    argv = server_spec(Path("/bin/redis-server"), "ams", 6379, tmp_path, tmp_path / "log").argv
    assert option(argv, "--maxmemory") == "256mb"
    assert option(argv, "--maxmemory-policy") == "noeviction"
    monkeypatch.setenv(MAXMEMORY_ENV, "64mb")
    argv = server_spec(Path("/bin/redis-server"), "ams", 6379, tmp_path, tmp_path / "log").argv
    assert option(argv, "--maxmemory") == "64mb"
