"""A region's loss on a real Patroni cluster, started by the dev stack's launcher (Postgres and
Redis only, three regions: the primary in ams, the standby in iad, the witness in sin):
``status --json`` names each member's region; losing the leader's region leaves its children
dead (the supervisor honours the lost region) while the witness and the standby elect the
standby once the lock's ttl runs out; when the region is back the supervisor restarts its
children and the old primary streams as a replica. No timing assertions beyond generous
deadlines: the drill (``memorybank drill run region-loss``) measures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import msgspec
import pytest

from devstack import cli, patroni
from devstack.launcher import Stack
from devstack.testing import running_stack
from ops.drills import failover
from ops.drills.faults import Ctx

pytestmark = pytest.mark.integration

REGIONS = ("ams", "iad", "sin")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(services={"postgres", "redis"}, regions=REGIONS) as running:
        yield running


def state_of(stack: Stack, name: str) -> str:
    return next(c.state for c in stack.status().children if c.name == name)


def test_status_names_each_members_and_childs_region(
        stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--json", "--data-dir", str(stack.data_dir)]) == 0
    report = msgspec.json.decode(capsys.readouterr().out)
    members = report["postgres"]["members"]
    assert {n: m["region"] for n, m in members.items()} == {
        "primary": "ams", "standby": "iad", "ams": "ams", "iad": "iad", "sin": "sin"}
    assert report["postgres"]["leader"] == "primary"
    processes = report["processes"]
    assert processes["pg-witness"]["region"] == "sin"
    assert processes["redis-iad"]["region"] == "iad"
    assert processes["supervisor"]["region"] is None


async def test_the_leaders_region_lost_then_back_closes_the_cycle(stack: Stack) -> None:
    urls = stack.topology().postgres
    ctx = Ctx(stack=stack, status={}, region="ams", hold_s=0.0)
    await failover.lose_region(ctx)
    began = time.monotonic()
    while patroni.live_postgres(urls).leader != "standby":
        assert time.monotonic() - began < 90, "the standby never led"
        await asyncio.sleep(0.5)
    # Well past the supervisor's first restart: the lost region's children are still dead.
    for name in ("pg-primary", "pg-ams", "redis-ams"):
        assert state_of(stack, name) == "crashed", name
    assert state_of(stack, "redis-iad") == "running"
    assert stack.status().lost_regions == ["ams"]

    await failover.regain_region(ctx)
    await failover.settle(ctx)
    assert not ctx.manual, ctx.manual  # the supervisor and Patroni did it all
    after = patroni.live_postgres(urls)
    assert after.leader == "standby"
    assert after.members["primary"].state == "streaming"  # the old primary, a replica now
    assert stack.status().running and stack.status().lost_regions == []
