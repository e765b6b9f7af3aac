"""The unit tier opens no network socket: pytest-socket blocks every inet socket (and name
lookups) for each test here, so a test that needs a server belongs in tests/integration/.
Unix sockets stay allowed: asyncio's event loop wakes itself through a socketpair."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket

from mbwire import cells


def pytest_runtest_setup(item: pytest.Item) -> None:
    disable_socket(allow_unix_socket=True)


@pytest.fixture(autouse=True)
def _served_cell_restored() -> Iterator[None]:
    """An app built in a test serves a cell (mbwire.cells.serve, process-wide): the next test
    starts as a process that serves none."""
    saved = dict(vars(cells._Served))
    yield
    for name in ("cell", "home", "fleet", "set"):
        if name in saved:
            setattr(cells._Served, name, saved[name])
        elif name in vars(cells._Served):
            delattr(cells._Served, name)
