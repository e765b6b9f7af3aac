"""Faults fault drills found in the whole stack, each asserted by behaviour (status codes, headers,
values), on a stack of its own (these tests stop and stall children):
- a stalled central holds every write it was sent; reads through the same edge and the hub's
  ``/v1/regions`` still answer (reads and writes have separate connections and budgets);
- with the primary down, central's ``/healthz`` is 503 and a write is a 503 with Retry-After
  (not a wait ending in 504); the replica's lag header and ``/v1/regions`` stop saying "0"/"up";
- with a region's replica down, its hub answers a read 503 + Retry-After within the edge's
  per-hub attempt timeout, and the edge serves the read from another region."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import httpx
import msgspec
import psutil
import pytest

from devstack import patroni
from devstack.launcher import Stack
from devstack.secrets import mint_token
from devstack.testing import running_stack
from mbedge.settings import EdgeSettings
from mbwire import HopSigner, Principal
from regional.settings import HubSettings

pytestmark = pytest.mark.integration

# The edge's per-hub attempt timeout: how long a hub has to answer a read before the edge
# moves on.
ATTEMPT_S = next(f.default for f in msgspec.structs.fields(EdgeSettings)
                 if f.name == "attempt_timeout_s")


# How long a hub waits for central's answer to a write.
CENTRAL_S = next(f.default for f in msgspec.structs.fields(HubSettings)
                 if f.name == "central_timeout_s")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def auth(stack: Stack, sub: str) -> dict[str, str]:
    token = mint_token(stack.secrets().jwt_hs256_secret, sub, tier="internal")
    return {"Authorization": f"Bearer {token}"}


def hub_call(stack: Stack, path: str, sub: str) -> dict[str, str]:
    """The headers of a direct, signed call to a hub, as the edge would send it."""
    rid = uuid.uuid4().hex
    signer = HopSigner(stack.secrets().edge_hop_secret)
    return {**signer.sign("GET", path, Principal(sub=sub, tier="internal"), rid),
            "x-request-id": rid}


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> bool:
    """Polls ``check`` until true; False at the deadline (a failure, never a timing claim)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.3)
    return False


@contextlib.contextmanager
def stalled(stack: Stack, *names: str) -> Iterator[None]:
    """SIGSTOP children and their workers (granian forks them); SIGCONT afterwards."""
    procs = []
    for name in names:
        pid = stack.status().report().processes[name].pid
        assert pid is not None
        procs += [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        os.kill(p.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)


async def create_twin(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """A twin, as a client makes one: a 503 is retried after its Retry-After (after a test
    that stopped the primary, central's pool still holds connections the restart broke: each
    answers one 503, the audit chainer's and intake's among them), for at most 20 s."""
    deadline = time.monotonic() + 20
    while True:
        r = await http.post("/v1/twins", json={"profile": {"n": 1}}, headers=headers)
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(float(r.headers.get("retry-after", "1")))
    assert r.status_code == 201, r.text
    return str(r.json()["twin_id"])


async def test_reads_answer_while_hung_writes_hold_the_write_connections(stack: Stack) -> None:
    topo = stack.topology()
    reader, writer = auth(stack, "fx-hung-reader"), auth(stack, "fx-hung-writer")
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=topo.edges["ams"], timeout=30, limits=limits) as http:
        twin = await create_twin(http, reader)          # never read yet: not in the PoP cache
        shards = [n for n in stack.status().report().processes if n.startswith("central")]
        with stalled(stack, *shards):  # every central shard hangs
            # More writes than the edge's (and the hub's) upstream connections: all hang.
            writes = [asyncio.create_task(http.post("/v1/twins", json={"profile": {}},
                                                    headers=writer)) for _ in range(80)]
            await asyncio.sleep(1.0)
            r = await http.get(f"/v1/twins/{twin}", headers=reader)
            assert r.status_code == 200, r.text
            path = "/v1/regions"
            async with httpx.AsyncClient(base_url=topo.hubs["ams"], timeout=ATTEMPT_S) as hub:
                r = await hub.get(path, headers=hub_call(stack, path, "fx-hung-regions"))
            assert r.status_code == 200, r.text
            assert r.json()["central"] == "unreachable"
        answers = await asyncio.gather(*writes)
    # Each hung write ended in a documented answer, never a 500.
    assert {a.status_code for a in answers} <= {201, 503, 504}, {a.status_code for a in answers}


async def test_primary_down_fails_fast_and_says_so(stack: Stack) -> None:
    topo = stack.topology()
    headers = auth(stack, "fx-primary-down")
    path = "/v1/regions"
    async with httpx.AsyncClient(base_url=topo.edges["ams"], timeout=30) as http:
        twin = await create_twin(http, headers)
        # Both members that may lead, the leader last: with either left, Patroni would promote
        # it (or the leader would go on alone) and the writes would land.
        leader = patroni.live_postgres(topo.postgres).leader or "primary"
        candidates = sorted(("pg-primary", "pg-standby"), key=lambda n: n == f"pg-{leader}")
        for name in candidates:
            stack.stop_process(name)
        try:
            r = await http.get(f"{topo.central}/healthz")
            assert r.status_code == 503, r.text
            for n in range(4):   # the broken pooled connections first, then the empty pool
                # Within half the hub's timeout for central: a 503 that arrives after it would
                # be a race with the hub's 504 "outcome unknown".
                r = await http.patch(f"/v1/twins/{twin}", content=b'{"n": %d}' % n, headers={
                    **headers, "content-type": "application/merge-patch+json"},
                    timeout=CENTRAL_S / 2)
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) >= 1
            async with httpx.AsyncClient(base_url=topo.hubs["ams"], timeout=30) as hub:

                async def lag_shows() -> bool:
                    r = await hub.get(f"/v1/twins/{twin}",
                                      headers=hub_call(stack, f"/v1/twins/{twin}",
                                                       "fx-primary-down"))
                    assert r.status_code == 200, r.text   # still served, from the replica
                    return float(r.headers["x-replica-lag-ms"]) > 500

                assert await until(lag_shows), "a replica cut off from its primary said lag 0"
                r = await hub.get(path, headers=hub_call(stack, path, "fx-primary-down"))
                own = {g["id"]: g for g in r.json()["regions"]}["ams"]
                assert own["status"] == "degraded", own
        finally:
            for name in reversed(candidates):
                stack.start_process(name)

        async def central_healthy() -> bool:
            return (await http.get(f"{topo.central}/healthz")).status_code == 200

        assert await until(central_healthy), "central never found its primary again"
        assert await until(lambda: streaming(stack)), "the replicas never streamed again"


async def streaming(stack: Stack) -> bool:
    """Every hub's replica streams from the primary (its /healthz says so)."""
    async with httpx.AsyncClient(timeout=5) as http:
        for url in stack.topology().hubs.values():
            r = await http.get(f"{url}/healthz")
            if r.status_code != 200 or not r.json().get("replica_streaming"):
                return False
    return True


async def test_a_hub_whose_replica_is_down_answers_503_before_the_edge_gives_up(
    stack: Stack,
) -> None:
    topo = stack.topology()
    headers = auth(stack, "fx-replica-down")
    assert await until(lambda: streaming(stack))
    async with httpx.AsyncClient(base_url=topo.edges["ams"], timeout=30) as http:
        twin = await create_twin(http, headers)
        path = f"/v1/twins/{twin}"
        stack.stop_process("pg-ams")
        try:
            # As the edge calls a hub: within its per-hub attempt timeout.
            async with httpx.AsyncClient(base_url=topo.hubs["ams"], timeout=ATTEMPT_S) as hub:
                for _ in range(4):   # the broken pooled connections first, then the empty pool
                    r = await hub.get(path, headers=hub_call(stack, path, "fx-replica-down"))
                    assert r.status_code == 503, r.text
                    assert int(r.headers["retry-after"]) >= 1
            r = await http.get(path, headers=headers)
            assert r.status_code == 200, r.text
            assert "hub=iad" in r.headers["x-served-by"]
        finally:
            stack.start_process("pg-ams")
