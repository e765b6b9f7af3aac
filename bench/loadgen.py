"""A small HTTP/1.1 keep-alive load generator: N connections, each sends one request, reads the
answer by Content-Length, records its status and latency, and sends the next, until the time is up.

Each connection asks its own ``maker`` for the bytes of its next request, so a connection can
replay one pre-built request (``itertools.repeat(raw).__next__``) or send a fresh body each time
(central's Yjs increments). A hub or central refuses a replayed hop, so a request to them must
be signed afresh each time: ``Hop.request`` / ``signed`` do that on top of a pre-built head.
asyncio ``Protocol`` callbacks, no streams: one Python core drives 10-20k requests/s here.
``client_cpu`` says how busy that core was (near 1.0: the client limits).

    .venv/bin/python bench/loadgen.py http://127.0.0.1:8000/ -c 32 -d 5 -H 'X-A: b'
    .venv/bin/python bench/loadgen.py http://127.0.0.1:8101/v1/twins/t --hop-secret S --sub t
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

_EDGE = str(Path(__file__).resolve().parents[1] / "edge")
if _EDGE not in sys.path:  # run as a script; the other benches put it there first
    sys.path.insert(0, _EDGE)

from mbwire import HopSigner, Principal  # noqa: E402

Maker = Callable[[], bytes]


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN when there are no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def request_head(method: str, host: str, port: int, path: str,
                 headers: dict[str, str] | None = None) -> bytes:
    """The request line and headers, each ending in CRLF; the blank line is the caller's."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1")


def build_request(method: str, host: str, port: int, path: str,
                  headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body or method != "GET" else ""
    return request_head(method, host, port, path, headers) + f"{length}\r\n".encode() + body


class Hop:
    """Signs each request as it is made, with a fresh request id (a counter behind a random
    prefix: unique, and cheaper than a uuid4 per request), as the edge does for a hub."""

    def __init__(self, signer: HopSigner, principal: Principal | None) -> None:
        self.signer, self.principal = signer, principal
        self.prefix = f"lg-{secrets.token_hex(4)}-"
        self.count = itertools.count()

    def request(self, method: str, head: bytes, path: str, query: str = "",
                body: bytes = b"") -> bytes:
        """``head`` from ``request_head`` for ``path``/``query`` (as sent); adds the hop, the
        request id, the length and the body."""
        rid = f"{self.prefix}{next(self.count)}"
        hop = self.signer.sign(method, path, self.principal, rid, query=query, body=body)
        lines = [f"x-request-id: {rid}\r\n", *(f"{k}: {v}\r\n" for k, v in hop.items())]
        if body or method != "GET":
            lines.append(f"Content-Length: {len(body)}\r\n")
        return head + "".join(lines).encode("latin-1") + b"\r\n" + body


def signed(hop: Hop, method: str, host: str, port: int, path: str, *, query: str = "",
           headers: dict[str, str] | None = None) -> Maker:
    """A maker for one bodiless request, freshly signed each time it is sent."""
    head = request_head(method, host, port, f"{path}?{query}" if query else path, headers)
    return partial(hop.request, method, head, path, query)


@dataclass
class LoadResult:
    seconds: float
    connections: int
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, every answered request
    ok_per_second: Counter[int] = field(default_factory=Counter)  # 200s by whole second
    errors: list[str] = field(default_factory=list)  # connection-level failures
    client_cpu: float = 0.0  # CPU seconds of this process per wall second

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def rps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def non_200(self) -> int:
        return self.answered - self.statuses[200]

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000


class _Connection(asyncio.Protocol):
    """Closed loop (``interval`` 0): the next request goes as soon as the answer is in. Open loop
    (``interval`` > 0): request k is *due* at ``start + offset + k * interval`` and goes at
    max(due, previous answer); its latency counts from when it was due, not when it went, so a
    server that stalls is charged for the requests it kept from being sent (coordinated
    omission corrected, as wrk2 does)."""

    def __init__(self, maker: Maker, deadline: float, start: float, result: LoadResult,
                 done: asyncio.Future[None], interval: float = 0.0, offset: float = 0.0) -> None:
        self.maker, self.deadline, self.start, self.result, self.done = (
            maker, deadline, start, result, done)
        self.interval, self.due = interval, start + offset
        self.buffer = bytearray()
        self.need: int | None = None  # bytes of the whole answer, once its head is parsed
        self.status = 0
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._next()

    def _next(self) -> None:
        if not self.interval:
            self._send()
            return
        wait = self.due - time.perf_counter()
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._send)
        else:
            self._send()

    def _send(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        now = time.perf_counter()
        if now >= self.deadline:
            self._close()
            return
        # Closed loop: from the send. Open loop: from when it was due.
        self.sent = min(now, self.due) if self.interval else now
        self.due += self.interval
        self.transport.write(self.maker())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.need is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buffer[:end]).lower()
                at = head.find(b"\r\ncontent-length:")
                stop = head.find(b"\r\n", at + 2)
                try:
                    self.status = int(head[9:12])
                    length = int(head[at + 17:stop if stop >= 0 else None]) if at >= 0 else -1
                except ValueError:
                    length = -1
                if length < 0:
                    self._fail(f"cannot frame the answer (no Content-Length?): {head[:80]!r}")
                    return
                self.need = end + 4 + length
            if len(self.buffer) < self.need:
                return
            del self.buffer[:self.need]
            self.need = None
            now = time.perf_counter()
            self.result.statuses[self.status] += 1
            self.result.latencies.append(now - self.sent)
            if self.status == 200:
                self.result.ok_per_second[int(now - self.start)] += 1
            if now >= self.deadline:
                self._close()
                return
            self._next()

    def _fail(self, why: str) -> None:
        self.result.errors.append(why)
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None or self.need is not None:
            self.result.errors.append(f"connection lost: {exc or 'mid-answer'}")
        if not self.done.done():
            self.done.set_result(None)


async def run(host: str, port: int, makers: Sequence[Maker], seconds: float,
              rate: float = 0.0, at: Sequence[tuple[str, int]] | None = None) -> LoadResult:
    """One connection per maker, all running for ``seconds``; each ends after its last answer.
    ``rate`` > 0: open loop at that many requests per second in total, spread evenly over the
    connections (each at ``rate / len(makers)``, staggered); 0: closed loop. ``at``: each
    maker's own (host, port), e.g. the central shard its twins live on."""
    loop = asyncio.get_running_loop()
    interval = len(makers) / rate if rate > 0 else 0.0
    result = LoadResult(seconds=seconds, connections=len(makers))
    cpu0, start = time.process_time(), time.perf_counter()
    deadline = start + seconds
    dones: list[asyncio.Future[None]] = []
    for i, maker in enumerate(makers):
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)
        offset = interval * i / len(makers)
        await loop.create_connection(
            partial(_Connection, maker, deadline, start, result, done, interval, offset),
            *(at[i] if at else (host, port)))
    await asyncio.wait_for(asyncio.gather(*dones), timeout=seconds + 30)
    result.seconds = time.perf_counter() - start
    result.client_cpu = (time.process_time() - cpu0) / result.seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--seconds", type=float, default=5.0)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("-R", "--rate", type=float, default=0.0,
                        help="open loop at this many requests/s in total (0: closed loop)")
    parser.add_argument("--hop-secret", help="sign each GET as the edge does (a hub's secret)")
    parser.add_argument("--sub", help="the principal the hop carries (internal tier)")
    args = parser.parse_args()
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    headers = dict(h.split(": ", 1) for h in args.header)
    if args.hop_secret:
        principal = Principal(sub=args.sub, tier="internal") if args.sub else None
        hop = Hop(HopSigner(args.hop_secret), principal)
        makers = [signed(hop, "GET", host, port, url.path or "/", query=url.query,
                         headers=headers) for _ in range(args.connections)]
    else:
        raw = build_request("GET", host, port, url.path or "/", headers)
        makers = [itertools.repeat(raw).__next__ for _ in range(args.connections)]
    r = asyncio.run(run(host, port, makers, args.seconds, args.rate))
    print(f"{r.rps:,.0f} req/s  p50 {r.ms(50):.2f} ms  p99 {r.ms(99):.2f} ms  "
          f"statuses {dict(r.statuses)}  errors {len(r.errors)}  client cpu {r.client_cpu:.0%}")


if __name__ == "__main__":
    main()
