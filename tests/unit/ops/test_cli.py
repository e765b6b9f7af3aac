"""``memorybank drill``'s refusals: it lists without a stack, refuses an unknown drill, and never
starts (or runs on) a stack that is not fully running."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import cli
from ops.drills.faults import SCENARIOS
from tests.unit.devstack.stack_files import stopped_stack


def test_list_needs_no_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["drill", "list", "--data-dir", str(tmp_path / "none")]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [*SCENARIOS, "soak"]
    assert not (tmp_path / "none").exists()


def test_run_without_a_stack_says_so(tmp_path: Path) -> None:
    assert cli.main(["drill", "run", "hub-kill", "--data-dir", str(tmp_path)]) == 3


def test_an_unknown_drill_is_a_usage_error(tmp_path: Path) -> None:
    stopped_stack(tmp_path)
    assert cli.main(["drill", "run", "meteor", "--data-dir", str(tmp_path)]) == 2


def test_a_stopped_stack_is_refused_not_started(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    stopped_stack(tmp_path)
    assert cli.main(["drill", "run", "hub-kill", "--data-dir", str(tmp_path)]) == 1
    said = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal's width
    assert "is not fully running" in said and "`memorybank up` first" in said
