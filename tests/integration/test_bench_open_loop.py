"""The load generator's open loop charges a stalling server for the requests it kept from being
sent (coordinated omission): latency counts from each request's due time. Against a server that
takes 50 ms per answer, one connection due to send every 10 ms falls further behind with every
request, so its latencies grow towards the run's length, while the closed loop sees ~50 ms."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from bench import loadgen

pytestmark = pytest.mark.integration

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def slow_port() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.05)
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_open_loop_latency_counts_from_the_due_time(slow_port: int) -> None:
    raw = loadgen.build_request("GET", "127.0.0.1", slow_port, "/")
    maker = itertools.repeat(raw).__next__
    closed = await loadgen.run("127.0.0.1", slow_port, [maker], 1.0)
    opened = await loadgen.run("127.0.0.1", slow_port, [maker], 1.0, rate=100)
    assert closed.statuses[200] > 0 and opened.statuses[200] > 0
    assert min(closed.latencies) >= 0.045 and min(opened.latencies) >= 0.045
    # The 10th answer was due at 0.09 s and cannot arrive before 0.5 s: 0.4 s late at least.
    assert max(opened.latencies) > 0.4 > max(closed.latencies) / 2
