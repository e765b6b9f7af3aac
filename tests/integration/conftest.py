"""One full local stack (Postgres primary + a streaming replica per region, Redis per region,
central, hubs, edges) for the integration tests, started by the dev stack's own launcher and
always stopped, even when a test fails."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from central.migrate import apply_migrations
from devstack.launcher import Stack
from devstack.postgres import create_database
from devstack.secrets import Secrets, mint_token
from devstack.testing import running_stack
from devstack.topology import Topology

REGIONS = ("ams", "iad", "sin")


@pytest.fixture(scope="module")
def pg_stack() -> Iterator[Stack]:
    """A bare primary (Postgres only, one region) for a module's SQL-level tests."""
    with running_stack(services={"postgres"}, regions=("ams",)) as stack:
        create_database(stack.topology().postgres.primary)
        yield stack


@pytest.fixture
async def conn(pg_stack: Stack) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection to ``pg_stack``'s primary, migrations applied."""
    url = pg_stack.topology().postgres.primary
    await apply_migrations(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        yield c


@dataclass(frozen=True)
class LiveStack:
    topology: Topology
    secrets: Secrets
    stack: Stack

    def token(self, sub: str, *, tier: str = "internal", role: str = "agent") -> str:
        return mint_token(self.secrets.jwt_hs256_secret, sub, tier=tier, role=role)

    def auth(self, sub: str, **kw: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, **kw)}"}


async def kill_central_while(live: LiveStack, writer: Callable[[int], Awaitable[None]],
                             stop: asyncio.Event, writers: int = 6) -> None:
    """Runs ``writers`` copies of ``writer(w)`` (each loops until ``stop`` is set) for a second,
    kills every central shard's whole process group with SIGKILL (granian's main process and its
    worker: no chance to flush), starts them again, lets the writers go on for a second, then
    stops them."""
    running = [asyncio.create_task(writer(w)) for w in range(writers)]
    await asyncio.sleep(1.0)
    shards = [c for c in live.stack.status().children if c.name.startswith("central")]
    assert len(shards) == len(live.topology.writers)
    for shard in shards:
        assert shard.pid is not None
        os.killpg(shard.pid, signal.SIGKILL)
    await asyncio.sleep(0.5)
    for shard in shards:
        live.stack.start_process(shard.name)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*running)


@pytest.fixture(scope="session")
def live() -> Iterator[LiveStack]:
    with running_stack(regions=REGIONS) as stack:
        yield LiveStack(stack.topology(), stack.secrets(), stack)
        # Whatever the tests asserted, a service that hit an unexpected error (a 500, a crash)
        # fails the run, with the evidence.
        unexpected = []
        for log in sorted((stack.data_dir / "logs").glob("*.log")):
            if log.name.startswith("pg-"):
                # Postgres under Patroni: Patroni logs a traceback when a drill kills its
                # postmaster (the fault under test). Our services' logs are what is judged.
                continue
            lines = log.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if "Traceback (most recent call last)" in line or "unhandled error" in line:
                    unexpected.append(f"{log.name}:\n" + "\n".join(lines[i : i + 40]))
        assert not unexpected, "services logged unexpected errors:\n" + "\n\n".join(unexpected)


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client
