"""The unit tier opens no network socket: pytest-socket blocks every inet socket (and name
lookups) for each test here, so a test that needs a server belongs in tests/integration/.
Unix sockets stay allowed: asyncio's event loop wakes itself through a socketpair."""

from __future__ import annotations

import pytest
from pytest_socket import disable_socket


def pytest_runtest_setup(item: pytest.Item) -> None:
    disable_socket(allow_unix_socket=True)
