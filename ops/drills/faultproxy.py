"""A fault-injecting TCP proxy: this kernel has no netem, so faults between services are made in
user space, on one link (``listen -> upstream``), from the process that runs the proxy.

What it can do (``FaultProxy.mode``):

- ``pass``: forward bytes both ways.
- ``latency``: hold every chunk ``latency_ms`` (plus up to ``jitter_ms``) before passing it on,
  each direction, so a request-response pays it twice; order within a connection is kept.
- ``blackhole``: a partition that drops: connections stay open, bytes vanish, nothing answers.
  The caller waits until its own timeout, as behind a dead route.
- ``reset``: a partition that refuses: every open connection and each new one is reset (RST),
  as when a firewall rejects. Callers fail at once.

What it cannot do: lose or reorder single packets inside a connection (TCP hides those), limit
bandwidth, or fault only one direction. Switching mode affects connections already open.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from typing import Literal

Mode = Literal["pass", "latency", "blackhole", "reset"]
MODES: tuple[Mode, ...] = ("pass", "latency", "blackhole", "reset")
_CHUNK = 65536


def _abort(writer: asyncio.StreamWriter) -> None:
    """Closes with RST (SO_LINGER 0) instead of FIN, so the peer sees a reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host, self.port = host, port
        self.mode: Mode = "pass"
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.connections = 0  # accepted so far, for reports and tests
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def set(self, mode: Mode, *, latency_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode, self.latency_ms, self.jitter_ms = mode, latency_ms, jitter_ms
        if mode == "reset":
            for writer in list(self._open):
                _abort(writer)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "reset":
            _abort(client_w)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(client_w)
            return
        self._open.update((client_w, up_w))
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            for w in (client_w, up_w):
                self._open.discard(w)
                w.transport.abort() if self.mode == "reset" else w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                if self.mode == "blackhole":
                    continue  # dropped: the sender believes it was sent
                if self.mode == "latency" and self.latency_ms > 0:
                    delay = self.latency_ms + random.uniform(0, self.jitter_ms)
                    await asyncio.sleep(delay / 1000)
                if self.mode == "reset":
                    break
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if self.mode != "reset" and not writer.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()
