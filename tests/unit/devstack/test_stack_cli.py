"""The command line without a running stack: parsing, tokens, status of an empty directory."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from devstack import cli, secrets
from tests.unit.devstack.stack_files import stopped_stack


def test_data_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMORYBANK_DATA_DIR", raising=False)
    assert cli._data_dir_default() == Path(".memorybank")
    monkeypatch.setenv("MEMORYBANK_DATA_DIR", "/tmp/elsewhere")
    assert cli._data_dir_default() == Path("/tmp/elsewhere")


def test_up_arguments() -> None:
    args = cli.build_parser().parse_args(["up", "--regions", "ams, iad", "--data-dir", "/x"])
    assert args.regions == ["ams", "iad"] and args.data_dir == Path("/x")
    assert args.services == ["postgres", "backups", "redis", "central", "hubs", "edges"]


def test_token_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stopped_stack(tmp_path)
    code = cli.main(["token", "--sub", "carol", "--tier", "enterprise", "--role", "admin",
                     "--ttl", "120", "--data-dir", str(tmp_path)])
    assert code == 0
    token = capsys.readouterr().out.strip()
    key = secrets.load_or_create(tmp_path).jwt_hs256_secret
    claims = jwt.decode(token, key, algorithms=["HS256"], audience="memory-bank")
    assert (claims["sub"], claims["tier"], claims["role"]) == ("carol", "enterprise", "admin")
    assert claims["exp"] - claims["iat"] == 120


def test_bad_tier_is_a_usage_error(tmp_path: Path) -> None:
    stopped_stack(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["token", "--sub", "x", "--tier", "gold", "--data-dir", str(tmp_path)])
    assert exc.value.code == 2


def test_status_of_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--data-dir", str(tmp_path)]) == cli.EXIT_NOT_RUNNING
    assert "memorybank up" in capsys.readouterr().err


def test_unknown_region_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "--regions", "ams,xyz", "--data-dir", str(tmp_path)]) == 1
    assert "xyz" in capsys.readouterr().err
