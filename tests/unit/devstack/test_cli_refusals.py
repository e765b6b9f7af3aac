"""The CLI's sharp edges: a bad ``--ttl`` is a usage error, and a data directory where no ``up``
ran (a typo) is refused by every command but ``up``, which alone creates one."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack import cli, secrets, state
from tests.unit.devstack.stack_files import stopped_stack

COMMANDS_ON_A_STACK = [["token", "--sub", "ann"], ["demo"], ["status"], ["down"]]


@pytest.mark.parametrize("ttl", ["-5", "0", "2592001", "abc", "1.5", ""])
def test_a_bad_ttl_is_a_usage_error(
    ttl: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped_stack(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["token", "--sub", "ann", "--ttl", ttl, "--data-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--ttl" in err and str(secrets.MAX_TTL_S) in err and "Traceback" not in err


@settings(max_examples=60, deadline=None)
@given(ttl=st.integers(min_value=-(10**12), max_value=10**12))
def test_ttl_mints_exactly_or_refuses(ttl: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("stack")
    key = stopped_stack(data_dir).jwt_hs256_secret
    argv = ["token", "--sub", "ann", "--ttl", str(ttl), "--data-dir", str(data_dir)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if not 0 < ttl <= secrets.MAX_TTL_S:
            with pytest.raises(SystemExit) as exc:
                cli.main(argv)
            assert exc.value.code == 2
            return
        assert cli.main(argv) == 0
    claims = jwt.decode(out.getvalue().strip(), key, algorithms=["HS256"],
                        audience=secrets.JWT_AUDIENCE, options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == ttl


def test_mint_token_refuses_a_ttl_beyond_the_bound() -> None:
    with pytest.raises(ValueError, match=str(secrets.MAX_TTL_S)):
        secrets.mint_token("k" * 43, "ann", ttl=secrets.MAX_TTL_S + 1)
    with pytest.raises(ValueError, match="ttl"):
        secrets.mint_token("k" * 43, "ann", ttl=-5)


@pytest.mark.parametrize("command", COMMANDS_ON_A_STACK, ids=lambda c: c[0])
def test_a_mistyped_data_dir_is_refused_and_not_created(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "memroybank"
    assert cli.main([*command, "--data-dir", str(typo)]) == cli.EXIT_NOT_RUNNING
    err = capsys.readouterr().err
    assert str(typo.resolve()) in err and "memorybank up" in err
    assert not typo.exists()


@pytest.mark.parametrize("command", COMMANDS_ON_A_STACK, ids=lambda c: c[0])
def test_an_existing_directory_without_a_stack_is_left_alone(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEMORYBANK_DATA_DIR", str(tmp_path))  # the typo may come from the env
    assert cli.main(command) == cli.EXIT_NOT_RUNNING
    assert str(tmp_path.resolve()) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_token_without_the_keys_up_made_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped_stack(tmp_path)
    (tmp_path / secrets.SECRETS_FILE).unlink()
    assert cli.main(["token", "--sub", "ann", "--data-dir", str(tmp_path)]) == cli.EXIT_NOT_RUNNING
    assert "memorybank up" in capsys.readouterr().err
    assert not (tmp_path / secrets.SECRETS_FILE).exists()


def test_token_of_a_stopped_stack_uses_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = stopped_stack(tmp_path).jwt_hs256_secret
    assert cli.main(["token", "--sub", "ann", "--ttl", "60", "--data-dir", str(tmp_path)]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), key, algorithms=["HS256"],
                        audience=secrets.JWT_AUDIENCE)
    assert claims["sub"] == "ann" and claims["exp"] - claims["iat"] == 60


def test_down_and_status_of_a_stopped_stack(tmp_path: Path) -> None:
    stopped_stack(tmp_path)
    assert cli.main(["down", "--data-dir", str(tmp_path)]) == 0
    assert cli.main(["status", "--data-dir", str(tmp_path)]) == cli.EXIT_NOT_RUNNING


@pytest.mark.parametrize("damaged", [state.STATE_FILE, secrets.SECRETS_FILE])
def test_a_damaged_file_is_named_not_a_traceback(
    damaged: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped_stack(tmp_path)
    (tmp_path / damaged).write_text('{"regions": 7')
    assert cli.main(["token", "--sub", "ann", "--data-dir", str(tmp_path)]) == 1
    assert str(tmp_path / damaged) in capsys.readouterr().err
