"""The primary Postgres fails over by itself: kill -9 the leader's postmaster under a steady
write load through an edge, and Patroni promotes the synchronous standby; every acknowledged write
is on the new leader (RPO 0), writes succeed again without any manual step (central finds the new
leader through its multi-host read-write URL), the hubs' replicas follow the new timeline, and
the old primary rejoins as a replica. Then the old primary's whole node dies and ``up`` brings it
back: as a replica, never a second writer (fencing). No timing assertions: the waits are generous
deadlines; the drill (``memorybank drill``) measures RTO."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from devstack import patroni, procs
from devstack.launcher import Stack
from devstack.ports import PortPlan
from devstack.postgres import pg_data_root
from devstack.secrets import mint_token
from devstack.testing import running_stack
from mbwire import ConsistencyToken

pytestmark = pytest.mark.integration

REGIONS = ("ams", "iad")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Unsupervised: a test here kills a node and brings it back with `up` itself.
    with running_stack(regions=REGIONS, supervise=False) as stack:
        yield stack


def plan_of(stack: Stack) -> PortPlan:
    state = stack.status()
    assert state.topology is not None
    base = int(state.topology.central.rsplit(":", 1)[1]) - 1
    return PortPlan(base=base, regions=REGIONS)


def postmaster_pid(stack: Stack, member: str) -> int:
    pg_root = pg_data_root(stack.data_dir, procs.unprivileged())
    return int((pg_root / member / "postmaster.pid").read_text().split()[0])


def in_recovery(url: str) -> bool | None:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return bool(conn.execute("select pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return None


def wait_until(predicate, within_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"not within {within_s:.0f} s: {what}"
        time.sleep(0.25)


def child_state(stack: Stack, name: str) -> str:
    return next(c.state for c in stack.status().children if c.name == name)


def member_roles(stack: Stack) -> dict[str, tuple[str, str]]:
    rest = [m.rest_url for m in patroni.members(plan_of(stack))]
    return {m["name"]: (m["role"], m["state"]) for m in patroni.cluster_view(rest)}


@dataclass
class Writes:
    """Creates twins in a loop through one edge; remembers what was acknowledged."""

    acked: dict[str, str] = field(default_factory=dict)      # twin id -> its token
    failures: Counter[str] = field(default_factory=Counter)
    running: bool = True

    async def run(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        n = 0
        while self.running:
            n += 1
            try:
                r = await http.post(url, json={"profile": {"n": n}}, headers=headers, timeout=15)
            except httpx.HTTPError as exc:
                self.failures[type(exc).__name__] += 1
                continue
            if r.status_code == 201:
                self.acked[r.json()["twin_id"]] = r.headers["x-consistency-token"]
            else:
                self.failures[str(r.status_code)] += 1
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.02)


async def test_primary_killed_standby_promoted_nothing_lost(stack: Stack) -> None:
    topo = stack.topology()
    leader = patroni.leader_of(plan_of(stack))
    assert leader == "primary"
    assert member_roles(stack)["standby"][0] == "sync_standby"
    token = mint_token(stack.secrets().jwt_hs256_secret, "failover-primary-writer",
                       tier="internal")
    headers = {"Authorization": f"Bearer {token}"}
    # Reads under another sub: the writer's session floor at the edge would send its reads past
    # the cache to the replica, and the cache is what the feed follower keeps honest.
    reader = {"Authorization": "Bearer " + mint_token(
        stack.secrets().jwt_hs256_secret, "failover-primary-reader", tier="internal")}
    load = Writes()
    async with httpx.AsyncClient() as http:
        # A twin every region has read (so each hub's Redis holds it) before the switch.
        made = await http.post(f"{topo.edges['ams']}/v1/twins", json={"profile": {"v": 0}},
                               headers=headers)
        assert made.status_code == 201, made.text
        cached = made.json()["twin_id"]
        for region in REGIONS:
            r = await http.get(f"{topo.edges[region]}/v1/twins/{cached}", headers=reader)
            assert r.status_code == 200, r.text
        task = asyncio.create_task(load.run(http, f"{topo.edges['ams']}/v1/twins", headers))
        await asyncio.sleep(2)
        before = len(load.acked)
        assert before > 0, load.failures
        # A token issued before the failover (issue 21, item 7): the write it names was flushed
        # on the synchronous standby before it was acknowledged, and the promoted standby's
        # timeline goes on from the end of that WAL, so the token's LSN stays a lower bound of
        # every position after the switch: a read with it must be answered, never refused as
        # from the future nor served from before the write.
        pre_id, pre_token = list(load.acked.items())[-1]
        os.kill(postmaster_pid(stack, "primary"), signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: patroni.leader_of(plan_of(stack)) == "standby",
                                90, "the standby leads")
        at_promotion = len(load.acked)
        await asyncio.to_thread(wait_until, lambda: len(load.acked) > at_promotion + 5, 60,
                                "writes succeed again")
        load.running = False
        await task
        # Every acknowledged write is on the new leader (RPO 0).
        with psycopg.connect(topo.postgres.primary) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (False,)
            found = {row[0] for row in conn.execute(
                "select twin_id from twins where twin_id = any(%s)", (list(load.acked),))}
        assert found == set(load.acked), f"lost {len(set(load.acked) - found)} acknowledged"
        # Failures during the switch are retryable answers, never a 500.
        assert not {k for k in load.failures if k.startswith("5") and k not in ("503", "504")}, \
            load.failures
        # The old primary rejoins as a replica by itself; the hubs' replicas follow the new
        # timeline, and a read with the last write's token is answered in every region.
        await asyncio.to_thread(
            wait_until, lambda: member_roles(stack).get("primary", ("", ""))[1] == "streaming",
            90, "the old primary streams from the new leader")
        assert in_recovery(topo.postgres.nodes["primary"]) is True
        last_id, last_token = list(load.acked.items())[-1]
        for region in REGIONS:
            r = await http.get(f"{topo.edges[region]}/v1/twins/{last_id}", timeout=15,
                               headers={**headers, "X-Consistency-Token": last_token})
            assert r.status_code == 200, (region, r.text)
            r = await http.get(f"{topo.edges[region]}/v1/twins/{pre_id}", timeout=15,
                               headers={**reader, "X-Consistency-Token": pre_token})
            assert r.status_code == 200 and r.json()["twin_id"] == pre_id, (region, r.text)
            # The hub answered at a position at or past the pre-failover token.
            assert ConsistencyToken.parse(r.headers["x-consistency-token"]) >= \
                ConsistencyToken.parse(pre_token), (region, r.headers)
        # The feed followers survived the switch: a change made on the new leader reaches every
        # hub's cache without a token (the follower drops the stale entry).
        patched = await http.patch(
            f"{topo.edges['ams']}/v1/twins/{cached}", content=b'{"v": 1}',
            headers={**headers, "Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200, patched.text
        for region in REGIONS:
            async def fresh(region: str = region) -> bool:
                r = await http.get(f"{topo.edges[region]}/v1/twins/{cached}",
                                   headers={**reader, "Cache-Control": "no-cache"})
                return r.status_code == 200 and r.json()["profile"].get("v") == 1
            deadline = time.monotonic() + 30
            while not await fresh():
                assert time.monotonic() < deadline, f"{region} still serves the old version"
                await asyncio.sleep(0.25)


async def test_old_primary_node_restarted_by_up_is_never_a_writer(stack: Stack) -> None:
    topo = stack.topology()
    plan = plan_of(stack)
    leader = patroni.leader_of(plan)
    assert leader in patroni.FAILOVER_MEMBERS
    other = "primary" if leader == "standby" else "standby"
    # The whole node dies: its Patroni and its Postgres, kill -9.
    record = stack.status()
    pid = next(c.pid for c in record.children if c.name == f"pg-{other}")
    assert pid is not None
    os.kill(postmaster_pid(stack, other), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    # Down means its Patroni is gone too, not only its port: a SIGKILLed process takes a moment
    # to exit, and `up` leaves alone a child it still sees running.
    await asyncio.to_thread(wait_until, lambda: in_recovery(topo.postgres.nodes[other]) is None
                            and child_state(stack, f"pg-{other}") == "crashed",
                            30, "the node is down")
    await asyncio.to_thread(stack.up)  # brings back what crashed, as `memorybank up` does
    assert child_state(stack, f"pg-{other}") in ("running", "starting")  # `up` started it
    assert patroni.leader_of(plan) == leader
    # `up` returns once Patroni answers; Postgres may still be starting. Its first answer,
    # whenever it comes, is as a replica.
    answers: list[bool] = []

    def answered() -> bool:
        got = in_recovery(topo.postgres.nodes[other])
        if got is not None:
            answers.append(got)
        return got is not None

    await asyncio.to_thread(wait_until, answered, 60, "the node answers again")
    assert answers == [True]
    token = mint_token(stack.secrets().jwt_hs256_secret, "failover-primary-fence", tier="internal")
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{topo.edges['iad']}/v1/twins", json={"profile": {"after": 1}},
                            headers={"Authorization": f"Bearer {token}"}, timeout=15)
    assert r.status_code == 201, r.text
    twin_id = r.json()["twin_id"]
    # The write is on the leader's history, and reaches the old primary as a replica.
    def replicated() -> bool:
        with psycopg.connect(topo.postgres.nodes[other]) as conn:
            return conn.execute("select 1 from twins where twin_id = %s",
                                (twin_id,)).fetchone() is not None
    await asyncio.to_thread(wait_until, replicated, 30, "the write reaches the old primary")
