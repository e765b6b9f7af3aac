"""The stack's supervisor restarts a crashed child by itself, and leaves a stopped one alone."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from devstack import cli, state
from devstack.children import ChildStatus
from devstack.launcher import Stack
from devstack.secrets import mint_token
from devstack.testing import running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(services={"postgres", "redis", "central", "hubs", "edges"},
                       regions=("ams",)) as running:
        yield running


def child(stack: Stack, name: str) -> ChildStatus:
    return next(c for c in stack.status().children if c.name == name)


def wait_until(ok: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_status_shows_the_supervisor(stack: Stack) -> None:
    assert child(stack, "supervisor").state == "running"
    assert stack.status().running
    assert cli.main(["status", "--data-dir", str(stack.data_dir)]) == 0


def test_killed_central_comes_back_by_itself_and_takes_writes(stack: Stack) -> None:
    before = child(stack, "central")
    assert before.pid is not None
    os.killpg(before.pid, signal.SIGKILL)  # granian and its worker: a crash, not a stop
    wait_until(lambda: child(stack, "central").state == "running"
               and child(stack, "central").pid != before.pid, 90, "central is restarted")
    assert child(stack, "central").restarts == before.restarts + 1
    token = mint_token(stack.secrets().jwt_hs256_secret, "supervisor-central", tier="internal")
    r = httpx.post(f"{stack.topology().edges['ams']}/v1/twins", json={"profile": {"n": 1}},
                   headers={"Authorization": f"Bearer {token}"}, timeout=15)
    assert r.status_code == 201, r.text


def test_a_stopped_child_stays_stopped_until_started(stack: Stack) -> None:
    stack.stop_process("redis-ams")
    recorded = state.load(stack.data_dir)
    assert recorded is not None and recorded.held == ["redis-ams"]
    time.sleep(3)  # several supervisor polls
    assert child(stack, "redis-ams").state == "stopped"
    stack.start_process("redis-ams")
    recorded = state.load(stack.data_dir)
    assert recorded is not None and recorded.held == []
    assert child(stack, "redis-ams").state == "running"


def test_down_stops_the_supervisor_first(stack: Stack) -> None:
    supervisor = child(stack, "supervisor")
    stack.down()
    assert not stack.status().children or all(
        c.state == "stopped" for c in stack.status().children)
    assert supervisor.pid is not None
    try:
        assert psutil.Process(supervisor.pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass
