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
_QUEUED = 1024  # chunks in flight per direction (at most 64 MiB); a full queue stops reading


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
        self._links: set[asyncio.Task[None]] = set()  # each accepted connection's forwarding

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
        if self._links:  # each link ends on the aborted sockets: let it, rather than cancel it
            await asyncio.wait(self._links, timeout=2)
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
        link = asyncio.current_task()
        if link is not None:
            self._links.add(link)
            link.add_done_callback(self._links.discard)
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            for w in (client_w, up_w):
                self._open.discard(w)
                w.transport.abort() if self.mode == "reset" else w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reads chunks and hands them, each with the time it is due, to ``_deliver``: latency
        delays every chunk by the same amount without holding the next one back behind it (a
        replication stream is many small chunks: a delay per chunk in turn would be a bandwidth
        cap, not a round trip)."""
        loop = asyncio.get_running_loop()
        due: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUED)
        deliver = asyncio.create_task(self._deliver(due, writer))
        try:
            while chunk := await reader.read(_CHUNK):
                if self.mode == "blackhole":
                    continue  # dropped: the sender believes it was sent
                if self.mode == "reset" or deliver.done():  # reset, or the peer is gone
                    break
                delay = 0.0
                if self.mode == "latency" and self.latency_ms > 0:
                    delay = (self.latency_ms + random.uniform(0, self.jitter_ms)) / 1000
                await due.put((loop.time() + delay, chunk))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not deliver.done():
                await due.put(None)
                with contextlib.suppress(OSError):
                    await deliver
            if self.mode != "reset" and not writer.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()

    async def _deliver(self, due: asyncio.Queue[tuple[float, bytes] | None],
                       writer: asyncio.StreamWriter) -> None:
        """Writes each chunk once it is due, in order (jitter never reorders a connection)."""
        loop = asyncio.get_running_loop()
        while (item := await due.get()) is not None:
            at, chunk = item
            if (wait := at - loop.time()) > 0:
                await asyncio.sleep(wait)
            if self.mode == "reset":
                return
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError:
                return
