"""Each cell's backups on the live stack (devstack/backup.py, restore.py): a base backup exists
soon after ``up`` and ``memorybank backup list`` shows it; a restore to a moment between two
acknowledged writes finds the first twin and not the second; a backup taken before an erasure
still holds the erased twin's row, sealed, and nothing can open it: its key is gone from the
cell's key store, which is in no backup."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from devstack import backup, backup_wal, cli, leadership, restore, state
from devstack.launcher import Stack
from devstack.layout import CANDIDATES
from devstack.patroni import live_postgres
from devstack.ports import PortPlan
from devstack.testing import running_stack
from mbwire import NotFound
from memorybank_client import MemoryBank
from ops.drills import disaster, failover
from ops.drills.faults import Ctx
from sealing import Keyring
from sealing.aead import is_sealed

from .conftest import LiveStack

pytestmark = pytest.mark.integration


def cell(live: LiveStack) -> tuple[backup.BackupCell, PortPlan]:
    current = state.load(live.stack.data_dir)
    assert current is not None
    return (backup.cell_of(live.stack.data_dir, None),
            PortPlan(base=current.port_base, regions=tuple(current.regions)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sandbox(live: LiveStack) -> Iterator[Path]:
    """A directory for a restored cluster beside the stack (the Postgres user can reach it)."""
    path = live.stack.data_dir.parent / f"restore-{uuid.uuid4().hex[:8]}"
    try:
        yield path
    finally:
        restore.remove(restore.Restored(cell="", target=str(path), backup_id="", to_time=None,
                                        to_lsn=None, port=0, postgres="", user=None))


def leader_lsn(live: LiveStack) -> str:
    with psycopg.connect(live.topology.postgres.primary, autocommit=True) as conn:
        row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wait_for_a_base_backup(home: backup.BackupCell, within_s: float = 120.0) -> backup.BaseBackup:
    """The agent takes the first one in the background, once its receiver streams."""
    deadline = time.monotonic() + within_s
    while not (done := [b for b in backup.backups(home) if b.status == "DONE"]):
        assert time.monotonic() < deadline, f"no base backup {within_s:.0f} s after up"
        time.sleep(0.5)
    return done[0]


def twins_in(url: str, twins: list[str]) -> dict[str, bytes]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("select twin_id, state from twins where twin_id = any(%s)",
                            (twins,)).fetchall()
    return {str(twin): bytes(state) for twin, state in rows}


def test_a_base_backup_exists_after_up_and_is_listed(live: LiveStack,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    home, plan = cell(live)
    first = wait_for_a_base_backup(home)
    assert first.size_bytes > 0 and first.end_lsn and first.retention == "VALID"
    assert backup_wal.receiver(plan) is not None  # the WAL streams into the store
    checks = backup.check(home)  # barman check, and pg_verifybackup of the latest backup
    assert [c for c in checks if not c[1]] == [] and "pg_verifybackup" in checks[-1][0]
    assert cli.main(["backup", "list", "--data-dir", str(live.stack.data_dir)]) == 0
    listed = capsys.readouterr().out
    assert first.backup_id in listed and "received up to" in listed
    assert not (home.store / "keys").exists() and (live.stack.data_dir / "keys").is_dir()


def test_a_restore_to_a_time_between_two_writes_finds_the_first_only(live: LiveStack) -> None:
    home, plan = cell(live)
    run = uuid.uuid4().hex[:8]
    with MemoryBank(live.topology.edges["ams"], live.token(f"pitr-{run}")) as mb:
        first = mb.twins.create({"name": f"before-{run}"}).twin_id
        between = datetime.now(UTC)  # A's commit is acknowledged: it is before this moment
        time.sleep(0.05)
        second = mb.twins.create({"name": f"after-{run}"}).twin_id
    backup_wal.wait_received(plan, leader_lsn(live))  # B's commit is in the store (partial or not)
    with sandbox(live) as target:
        began = time.monotonic()
        built = restore.restore(home, target, to_time=between, port=free_port())
        took = time.monotonic() - began
        assert built.backup_id and built.to_time == between.isoformat()
        with restore.running(built) as url:
            assert set(twins_in(url, [first, second])) == {first}
    print(f"restore to a time: {took:.1f} s")


def test_a_backup_from_before_an_erasure_holds_the_twin_sealed_and_unreadable(
        live: LiveStack) -> None:
    home, plan = cell(live)
    run = uuid.uuid4().hex[:8]
    owner = f"erase-bk-{run}"
    with MemoryBank(live.topology.edges["ams"], live.token(owner, tier="pro",
                                                           role="participant")) as mb:
        twin = mb.twins.create({"name": f"forget-me-{run}", "city": "Lyon"}).twin_id
        taken = backup.take(home)
        assert taken.status == "DONE"
        before = datetime.now(UTC)
        time.sleep(0.05)
        mb.twins.erase(twin)
    backup_wal.wait_received(plan, leader_lsn(live))
    with sandbox(live) as target:
        built = restore.restore(home, target, to_time=before, backup_id=taken.backup_id,
                                port=free_port())
        assert built.backup_id == taken.backup_id
        with restore.running(built) as url:
            rows = twins_in(url, [twin])
    assert is_sealed(rows[twin])  # the row is there, ciphertext
    assert twins_in(live.topology.postgres.primary, [twin]) == {}  # gone from the live cell
    keyring = Keyring.configure(keys_dir=str(live.stack.data_dir / "keys"))
    with pytest.raises(NotFound):
        asyncio.run(keyring.key(twin))  # its key is gone, and no backup holds the key store


@pytest.fixture(scope="module")
def small() -> Iterator[Stack]:
    """A stack of its own (Postgres and backups only, two regions): the tests below move its
    leader and lose both members that may lead."""
    with running_stack(services={"postgres", "backups"}, regions=("ams", "iad")) as stack:
        yield stack


def test_the_archive_follows_the_leader_through_a_switchover(small: Stack) -> None:
    """WAL written after a planned switchover reaches the store through the same slot on the
    new leader, and a restore of everything finds a row written on each side of it."""
    stack = small
    current = state.load(stack.data_dir)
    assert current is not None
    plan = PortPlan(base=current.port_base, regions=tuple(current.regions))
    home, urls = backup.cell_of(stack.data_dir, None), stack.topology().postgres
    with psycopg.connect(urls.primary, autocommit=True) as conn:
        conn.execute("create table marks (mark text)")
        conn.execute("insert into marks values ('before')")
    wait_for_a_base_backup(home)
    assert live_postgres(urls).leader == "primary"
    leadership.switchover(list(urls.patroni.values()), "primary", "standby")
    leadership.wait_settled(urls, within_s=120.0, leader="standby")
    with psycopg.connect(urls.primary, autocommit=True) as conn:
        conn.execute("insert into marks values ('after')")
        row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    backup_wal.wait_received(plan, str(row[0]), timeout_s=60)  # reconnected to the standby
    with psycopg.connect(urls.nodes["standby"], autocommit=True) as conn:
        slot = conn.execute("select active from pg_replication_slots where slot_name = %s",
                            (backup.SLOT,)).fetchone()
    assert slot == (True,)
    target = stack.data_dir.parent / "restored"
    built = restore.restore(home, target, port=free_port())  # everything: the latest
    with restore.running(built) as url, psycopg.connect(url) as conn:
        marks = {m for (m,) in conn.execute("select mark from marks").fetchall()}
    assert marks == {"before", "after"}


class Writer:
    """Commits numbered rows one by one until stopped, through the URL that reaches whichever
    member leads; ``acked`` holds those whose commit returned (acknowledged: on the synchronous
    standby too)."""

    def __init__(self, url: str) -> None:
        self.url, self.stop = url, threading.Event()
        self.acked: list[int] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        n += 1
                        conn.execute("insert into acked values (%s)", (n,))
                        self.acked.append(n)
            except psycopg.Error:
                time.sleep(0.2)  # no leader now: try again

    def wait_for(self, count: int, within_s: float = 120.0) -> None:
        deadline = time.monotonic() + within_s
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"{len(self.acked)} of {count} writes"
            time.sleep(0.05)


async def test_both_members_that_may_lead_lost_the_cell_comes_back_from_its_backups(
        small: Stack) -> None:
    """The disaster drill's steps on a live cell under write load: both members that may lead
    are killed and their data directories deleted; the cell is restored from the backup store
    into the old leader's directory, Patroni makes it the leader, the other member re-clones,
    every replica streams again, and every write acknowledged before the loss is there."""
    urls = small.topology().postgres
    with psycopg.connect(urls.primary, autocommit=True) as conn:
        conn.execute("create table if not exists acked (n bigint primary key)")
    wait_for_a_base_backup(backup.cell_of(small.data_dir, None))
    writer = Writer(urls.primary)
    writer.thread.start()
    try:
        await asyncio.to_thread(writer.wait_for, 200)
        ctx = Ctx(stack=small, status={}, region="ams", hold_s=0.0)
        await disaster.lose_both(ctx)
        acked = list(writer.acked)  # nothing is acknowledged once both are dead
        for member in CANDIDATES:
            assert not (disaster.member_dir(small, member) / "PG_VERSION").exists()
        await disaster.restore_from_backups(ctx)
        await failover.settle(ctx)
        assert len(ctx.manual) == 1 and "memorybank restore --latest" in ctx.manual[0]
        pg = live_postgres(urls)
        assert pg.leader == ctx.lost_leader
        assert all(m.state in ("running", "streaming") for m in pg.members.values()), pg.members
        await asyncio.to_thread(writer.wait_for, len(acked) + 50)  # it takes writes again
    finally:
        writer.stop.set()
        writer.thread.join(10)
    with psycopg.connect(urls.primary, autocommit=True) as conn:
        found = {n for (n,) in conn.execute("select n from acked").fetchall()}
    lost = sorted(set(acked) - found)
    assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:20]}"
