"""The launcher's background wait (Patroni's record of the synchronous standby, awaited while
the services after Postgres start): its result is the wait's, its error the wait's."""

from __future__ import annotations

import threading

import pytest

from devstack.errors import StackError
from devstack.launcher import _Background


def test_result_waits_for_the_wait_to_end() -> None:
    release, done = threading.Event(), []

    def wait() -> None:
        release.wait(5)
        done.append(True)

    background = _Background(wait)
    assert not done
    release.set()
    background.result()
    assert done == [True]


def test_result_raises_what_the_wait_raised() -> None:
    def wait() -> None:
        raise StackError("Postgres did not settle within 120 s: primary leader/running")

    with pytest.raises(StackError, match="did not settle"):
        _Background(wait).result()
