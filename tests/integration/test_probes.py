"""The launcher's probes against real sockets: whether a port listens (the kernel's socket
tables, then psutil for who), and an HTTP child's health over the standard library's client."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.health import HttpCheck, probe
from devstack.procs import listeners, listening_ports

pytestmark = pytest.mark.integration


def _listening(family: socket.AddressFamily, host: str) -> socket.socket:
    sock = socket.socket(family)
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_a_listening_port_is_found_with_its_owner_and_others_are_not() -> None:
    v4, v6 = _listening(socket.AF_INET, "127.0.0.1"), _listening(socket.AF_INET6, "::1")
    bound = socket.socket()  # bound, not listening: nothing can connect to it
    bound.bind(("127.0.0.1", 0))
    closed = _listening(socket.AF_INET, "127.0.0.1")
    ports = [s.getsockname()[1] for s in (v4, v6, bound, closed)]
    closed.close()
    try:
        if listening_ports(set(ports)) is not None:  # Linux: read from /proc/net/tcp{,6}
            assert listening_ports(set(ports)) == set(ports[:2])
        assert listeners(ports) == {ports[0]: {os.getpid()}, ports[1]: {os.getpid()},
                                    ports[2]: set(), ports[3]: set()}
        assert listeners(ports[2:]) == {ports[2]: set(), ports[3]: set()}
    finally:
        for sock in (v4, v6, bound):
            sock.close()


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz?deep=1" else 503)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_child_is_healthy_only_on_200(health_url: str) -> None:
    assert probe(HttpCheck(f"{health_url}/healthz?deep=1")) is None  # the query goes along
    assert probe(HttpCheck(f"{health_url}/healthz")) == f"GET {health_url}/healthz answered 503"
    gone = _listening(socket.AF_INET, "127.0.0.1")
    port = gone.getsockname()[1]
    gone.close()
    reason = probe(HttpCheck(f"http://127.0.0.1:{port}/healthz"))
    assert reason is not None and reason.startswith("ConnectionRefusedError")
