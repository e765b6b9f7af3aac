"""``devstack.testing.running_stack`` removes its directory only once its stack has stopped: a
``down`` cut short (an interrupt, a broken pipe) leaves the pid files that stop what still runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from devstack import testing


class _Stack:
    """Stands in for ``Stack``: records where it lives; ``down`` fails when told to."""

    made: list[_Stack] = []
    fail: BaseException | None = None

    def __init__(self, data_dir: Path, regions: tuple[str, ...], **_: Any) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True)
        (data_dir / "hub-ams.pid").write_text("4242")
        _Stack.made.append(self)

    def up(self) -> None:
        pass

    def down(self, *, discard: bool = False) -> None:
        self.discarded = discard
        if _Stack.fail is not None:
            raise _Stack.fail


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch) -> type[_Stack]:
    monkeypatch.setattr(testing, "Stack", _Stack)
    monkeypatch.delenv(testing.KEEP_ENV, raising=False)
    _Stack.made, _Stack.fail = [], None
    return _Stack


def test_a_stopped_stack_takes_its_directory_with_it(fake_stack: type[_Stack]) -> None:
    with testing.running_stack(services={"redis"}, regions=("ams",)):
        pass
    assert fake_stack.made[0].discarded  # its Postgres stopped at once: the data goes next
    assert not fake_stack.made[0].data_dir.parent.exists()


def test_a_kept_stack_stops_in_order_and_keeps_its_directory(
        fake_stack: type[_Stack], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(testing.KEEP_ENV, "1")
    with testing.running_stack(services={"redis"}, regions=("ams",)):
        pass
    data_dir = fake_stack.made[0].data_dir
    try:
        assert not fake_stack.made[0].discarded  # kept to be read: each node's ordered stop
        assert (data_dir / "hub-ams.pid").exists()
    finally:
        shutil.rmtree(data_dir.parent)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), BrokenPipeError(32, "pipe")])
def test_a_down_cut_short_keeps_the_directory_and_says_how_to_stop_it(
        fake_stack: type[_Stack], interrupt: BaseException) -> None:
    fake_stack.fail = interrupt
    with pytest.raises(type(interrupt)) as raised:
        with testing.running_stack(services={"redis"}, regions=("ams",)):
            pass
    data_dir = fake_stack.made[0].data_dir
    try:
        assert (data_dir / "hub-ams.pid").read_text() == "4242"
        assert f"memorybank down --data-dir {data_dir}" in "".join(raised.value.__notes__)
    finally:
        shutil.rmtree(data_dir.parent)
