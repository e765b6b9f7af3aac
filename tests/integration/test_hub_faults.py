"""A hub under faults, on its own stack (these tests stop children): hubs run 2 workers as on
Fly.io, yet one follower leads per hub and the cache is still invalidated; a dead limits Redis
costs requests nothing once the breaker opens and limiting resumes when it returns;
``/v1/regions`` calls a region down when its hub is dead; a WebSocket upgrade gets a 501 problem."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import httpx
import psutil
import pytest
import redis.asyncio as aioredis

from devstack.launcher import Stack
from devstack.secrets import mint_token
from devstack.testing import running_stack
from mbwire import ConsistencyToken, HopSigner, Principal
from regional.lease import Lease

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(hub_workers=2) as s:
        yield s


def log_of(stack: Stack, name: str) -> str:
    return (stack.data_dir / "logs" / f"{name}.log").read_text(errors="replace")


def hub_call(stack: Stack, path: str, sub: str, tier: str = "internal") -> dict[str, str]:
    """The headers of a direct, signed call to a hub, as the edge would send it."""
    rid = uuid.uuid4().hex
    signer = HopSigner(stack.secrets().edge_hop_secret)
    return {**signer.sign("GET", path, Principal(sub=sub, tier=tier), rid), "x-request-id": rid}


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> bool:
    """Polls ``check`` until true; False at the deadline (a failure, never a timing claim)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def test_two_workers_one_follower_and_the_cache_still_invalidated(stack: Stack) -> None:
    topo = stack.topology()
    hub_pid = stack.status().report().processes["hub-ams"].pid
    assert hub_pid is not None
    workers = {p.pid for p in psutil.Process(hub_pid).children(recursive=True)}
    assert len(workers) >= 2, "the hub should run two granian workers"
    redis = aioredis.Redis.from_url(topo.redis["ams"])
    try:
        holder = (await redis.get("mb:feed:leader") or b"").decode()
        assert int(holder.split(":")[1]) in workers
        assert log_of(stack, "hub-ams").count("feed follower: this worker leads") == 1

        token = mint_token(stack.secrets().jwt_hs256_secret, "lease-owner", tier="internal")
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=topo.edges["ams"], timeout=15) as http:
            r = await http.post("/v1/twins", json={"profile": {"n": 1}}, headers=auth)
            assert r.status_code == 201, r.text
            twin = r.json()["twin_id"]
            r = await http.patch(f"/v1/twins/{twin}", content=b'{"n": 2}', headers={
                **auth, "content-type": "application/merge-patch+json"})
            assert r.status_code == 200, r.text
            written = ConsistencyToken.parse(r.headers["x-consistency-token"])

        async def invalidated() -> bool:
            raw = await redis.get(f"mb:inv:{twin}")
            return raw is not None and ConsistencyToken.parse(raw.decode()) >= written

        assert await until(invalidated), "the leading follower never invalidated the write"
    finally:
        await redis.aclose()


async def test_limits_store_down_then_back(stack: Stack) -> None:
    topo = stack.topology()
    hub, path = topo.hubs["iad"], "/v1/regions"
    async with httpx.AsyncClient(base_url=hub, timeout=15) as http:
        stack.stop_process("redis-ams")        # the fleet's limits store (and ams's own Redis)
        try:
            for _ in range(8):
                r = await http.get(path, headers=hub_call(stack, path, "breaker", "free"))
                assert r.status_code == 200, r.text          # fail open
                assert "x-mb-fleet-limit" not in r.headers
            assert "limits store breaker open" in log_of(stack, "hub-iad")
        finally:
            stack.start_process("redis-ams")

        async def closed() -> bool:
            r = await http.get(path, headers=hub_call(stack, path, "probe", "internal"))
            return "x-mb-fleet-limit" in r.headers

        assert await until(closed), "the breaker never let a probe close it"
        statuses = [(await http.get(path, headers=hub_call(stack, path, "after", "free")))
                    .status_code for _ in range(11)]
        assert statuses == [200] * 10 + [429], statuses


async def test_regions_says_down_for_a_dead_hub(stack: Stack) -> None:
    topo = stack.topology()
    path = "/v1/regions"
    async with httpx.AsyncClient(base_url=topo.hubs["ams"], timeout=15) as http:

        async def iad_is(status: str) -> bool:
            r = await http.get(path, headers=hub_call(stack, path, "regions"))
            assert r.status_code == 200, r.text
            return {g["id"]: g["status"] for g in r.json()["regions"]}["iad"] == status

        assert await until(lambda: iad_is("up"))
        stack.stop_process("hub-iad")
        try:
            assert await until(lambda: iad_is("down")), "a dead hub's region was not reported down"
        finally:
            stack.start_process("hub-iad")
        assert await until(lambda: iad_is("up"))


def test_websocket_upgrade_without_the_edges_hop_gets_a_401_problem(stack: Stack) -> None:
    host, port = stack.topology().hubs["ams"].removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            f"GET /v1/realtime HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"401", answer
    assert b"content-type: application/problem+json" in head.lower()
    assert b'"status":401' in body and b"through the edge" in body


async def test_lease_passes_on_when_its_holder_dies_and_a_deposed_holder_stops(
    stack: Stack,
) -> None:
    redis = aioredis.Redis.from_url(stack.topology().redis["iad"])
    key = f"test:lease:{uuid.uuid4().hex}"
    dead, standby = Lease(redis, key, ttl_ms=60_000), Lease(redis, key, ttl_ms=600)
    running: list[str] = []

    async def work() -> None:
        running.append("standby")
        try:
            await asyncio.Event().wait()
        finally:
            running.remove("standby")

    try:
        assert await dead.acquire()            # a worker that takes the lease, then dies
        task = asyncio.create_task(standby.hold(work, "test"))
        await asyncio.sleep(0.5)               # several of its tries (a beat is 0.2 s)
        assert running == []                   # it stands by while the lease is held
        await redis.pexpire(key, 1)            # the dead holder's lease lapses

        async def took_over() -> bool:
            return running == ["standby"]

        assert await until(took_over), "the standby never took over a lapsed lease"
        assert (await redis.get(key)) == standby.holder.encode()
        await redis.set(key, "someone-else")   # deposed (e.g. it stalled past its TTL)

        async def stopped() -> bool:
            return running == []

        assert await until(stopped), "a deposed holder kept running its work"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert (await redis.get(key)) == b"someone-else"   # it released only its own lease
    finally:
        await redis.delete(key)
        await redis.aclose()
