"""A hub worker never accepts more sockets than its open-file limit leaves room for: past the
cap an upgrade is a 429, not an accept() that fails and leaves the client hanging."""

from __future__ import annotations

import resource

import pytest

from regional.realtime import quota


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    state = {"now": (1024, 4096)}

    def get(_: int) -> tuple[int, int]:
        return state["now"]

    def put(_: int, value: tuple[int, int]) -> None:
        if value[0] > value[1] != resource.RLIM_INFINITY:
            raise ValueError("soft over hard")
        state["now"] = value

    monkeypatch.setattr(quota.resource, "getrlimit", get)
    monkeypatch.setattr(quota.resource, "setrlimit", put)
    return state


def test_the_soft_limit_is_raised_when_the_hard_one_allows(limits: dict[str, tuple[int, int]],
                                                           ) -> None:
    assert quota.socket_cap(2000, reserve=512) == 2000
    assert limits["now"] == (2512, 4096)


def test_the_cap_shrinks_to_what_the_hard_limit_leaves(limits: dict[str, tuple[int, int]]) -> None:
    assert quota.socket_cap(20_000, reserve=512) == 4096 - 512
    assert limits["now"] == (4096, 4096)


def test_a_refused_raise_keeps_the_soft_limit(limits: dict[str, tuple[int, int]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: int, __: tuple[int, int]) -> None:
        raise OSError("not permitted")

    monkeypatch.setattr(quota.resource, "setrlimit", refuse)
    assert quota.socket_cap(20_000, reserve=512) == 1024 - 512
    assert quota.socket_cap(100, reserve=2000) == 0
