"""The fault proxy on a loopback echo server: it passes bytes, adds latency, drops everything
(blackhole) and resets connections, and switching back to ``pass`` heals new connections. The
latency check compares with the same proxy passing, never against a wall-clock budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ops.drills.faultproxy import FaultProxy


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    p = await FaultProxy("127.0.0.1", port).start()
    yield p
    await p.close()
    server.close()
    await server.wait_closed()


async def round_trip(p: FaultProxy, payload: bytes = b"ping", wait_s: float = 2.0) -> bytes:
    reader, writer = await asyncio.open_connection(p.host, p.port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), wait_s)
    finally:
        writer.close()


async def test_passes_bytes(proxy: FaultProxy) -> None:
    assert await round_trip(proxy, b"hello") == b"hello"
    assert proxy.connections == 1


async def test_latency_is_added_each_way(proxy: FaultProxy) -> None:
    began = time.monotonic()
    await round_trip(proxy)
    plain = time.monotonic() - began
    proxy.set("latency", latency_ms=150)
    began = time.monotonic()
    assert await round_trip(proxy) == b"ping"
    # Two crossings of 150 ms: at least 300 ms more than passing (sleep never returns early).
    assert time.monotonic() - began >= 0.3 > plain


async def test_blackhole_answers_nothing_then_heals(proxy: FaultProxy) -> None:
    proxy.set("blackhole")
    with pytest.raises(TimeoutError):
        await round_trip(proxy, wait_s=0.3)
    proxy.set("pass")
    assert await round_trip(proxy) == b"ping"


async def test_reset_refuses_new_and_open_connections(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    proxy.set("reset")
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        writer.write(b"b")
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(1), 2)
    writer.close()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await round_trip(proxy)
    with pytest.raises(ValueError):
        proxy.set("flaky")  # type: ignore[arg-type]
