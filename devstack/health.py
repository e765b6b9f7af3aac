"""Is a child up? One probe per kind of service, and a wait with a deadline.

- Postgres: a connection and ``select 1`` (a standby still replaying refuses connections), or a
  query that must answer true (a WAL receiver streams, seen from the leader);
- Redis: ``PING`` over a raw socket (no client library needed);
- HTTP services: ``GET /healthz`` answers 200."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

from devstack.errors import StartError


@dataclass(frozen=True, slots=True)
class PgCheck:
    url: str


@dataclass(frozen=True, slots=True)
class PgQueryCheck:
    url: str
    sql: str  # healthy once its first column is true


@dataclass(frozen=True, slots=True)
class RedisCheck:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class HttpCheck:
    url: str


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """Something accepts TCP connections (a Raft witness speaks no protocol we can probe)."""

    host: str
    port: int


Check = PgCheck | PgQueryCheck | RedisCheck | HttpCheck | TcpCheck


def probe(check: Check) -> str | None:
    """None when healthy, else why not (kept for the failure message)."""
    try:
        match check:
            case PgCheck(url):
                with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("select 1")
                return None
            case PgQueryCheck(url, sql):
                with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                    row = conn.execute(sql).fetchone()
                return None if row and row[0] else f"not yet: {sql}"
            case RedisCheck(host, port):
                with socket.create_connection((host, port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(64)
                return None if reply.startswith(b"+PONG") else f"PING answered {reply!r}"
            case TcpCheck(host, port):
                with socket.create_connection((host, port), timeout=1):
                    return None
            case HttpCheck(url):
                status = _http_status(url)
                return None if status == 200 else f"GET {url} answered {status}"
    except (OSError, psycopg.Error, httpx.HTTPError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}"
    raise AssertionError(f"unknown check {check!r}")


def _http_status(url: str) -> int:
    """``GET url``'s status. A plain ``http://`` URL (every local child's) goes over the standard
    library's client, which makes no TLS context: httpx builds one per call (loading the CA
    bundle), which was 40 % of the launcher's CPU while a stack started, on the same two cores
    as the children starting."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        return httpx.get(url, timeout=2).status_code
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=2)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status
    finally:
        conn.close()


def wait_healthy(
    name: str,
    check: Check,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
) -> None:
    """Polls ``check`` until it passes; raises ``StartError`` naming the child if the process
    exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    reason = "not probed yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise StartError(name, f"exited with code {code}", str(log), tail(log))
        reason = probe(check) or ""
        if not reason:
            return
        if time.monotonic() > deadline:
            raise StartError(
                name, f"not healthy after {timeout:.0f} s ({reason})", str(log), tail(log)
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file (what to show when a child fails to come up)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
