"""``status`` sees the kernel's listeners, and ``up`` never doubles a service: a granian server
killed -9 leaves its worker serving on the port (SO_REUSEPORT would let a second server share it);
the child is reported crashed, not running, with the PID still listening; ``up`` clears the
leftover before starting it again, and refuses to start anything on a port held by a process
this stack did not start. Stand-in apps: no Postgres needed."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from devstack import cli, procs
from devstack.errors import StackError
from devstack.launcher import Stack
from devstack.testing import ECHO_FACTORY, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(services={"edges"}, regions=("ams",),
                       factories={"edges": ECHO_FACTORY}, supervise=False) as running:
        yield running


def child(stack: Stack, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in stack.status().children if c.name == name)


def port_of(stack: Stack) -> int:
    return int(stack.topology().edges["ams"].rsplit(":", 1)[1])


def test_running_means_listening(stack: Stack) -> None:
    edge = child(stack, "edge-ams")
    assert edge.state == "running" and edge.listening
    assert all(os.getsid(pid) == edge.pid for pid in edge.listening)


def test_killed_server_with_a_serving_worker_is_crashed_and_up_replaces_it(stack: Stack) -> None:
    edge = child(stack, "edge-ams")
    server = psutil.Process(edge.pid)
    workers = server.children(recursive=True)
    os.kill(edge.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while child(stack, "edge-ams").state != "crashed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    after = child(stack, "edge-ams")
    # The worker outlived its server and still answers: status names it, and is not "running".
    assert set(after.listening) & {w.pid for w in workers}
    assert httpx.get(f"{stack.topology().edges['ams']}/healthz").status_code == 200
    assert cli.main(["status", "--data-dir", str(stack.data_dir)]) == 1

    stack.up()
    again = child(stack, "edge-ams")
    assert again.state == "running" and again.pid != edge.pid
    # One server on the port: every listener belongs to the new one; the old worker is gone.
    listening = procs.listeners([port_of(stack)])[port_of(stack)]
    assert listening and all(os.getsid(pid) == again.pid for pid in listening)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_up_refuses_a_port_someone_else_serves(stack: Stack) -> None:
    stack.stop_process("edge-ams")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", port_of(stack)))
        squatter.listen()
        stopped = child(stack, "edge-ams")
        assert stopped.state == "stopped" and stopped.listening == [os.getpid()]
        with pytest.raises(StackError, match="already served by pid"):
            stack.start_process("edge-ams")
        assert child(stack, "edge-ams").state == "stopped"
    stack.start_process("edge-ams")
    assert child(stack, "edge-ams").state == "running"
