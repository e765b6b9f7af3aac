"""The audit trail's chain on a real stack (Postgres under Patroni, central with one shard):
batches posted to central's ``POST /internal/audit`` as a hub posts them (an anonymous hop
signed with the central secret) are chained by shard 0 in seq order with signed checkpoints in
the blob directory, and ``memorybank audit verify`` (the function, and the command) holds;
then a row changed in the primary and a forged checkpoint each make it fail, naming the seq.
A bad batch is refused whole, and nothing of it is kept. On a fleet, each cell keeps a chain of
its own (its primary, its blob directory), and the verifier checks every one."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from central.audit import AT_FORMAT, CHECKPOINTS, checkpoint_key
from devstack.apps import REPO_ROOT, base_env
from devstack.launcher import Stack
from devstack.testing import running_stack
from mbwire import HopSigner
from mbwire.audit import MAX_BATCH, AuditRecord, Checkpoint, twin_ref
from mbwire.cells import Cell, CellMap
from ops.audit import verify

pytestmark = pytest.mark.integration

PATH = "/internal/audit"
_ROWS = """
select seq, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, action,
       twin_ref, request_id, outcome, region
from audit_log order by seq
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(regions=("ams",), services={"postgres", "redis", "central"},
                       central_shards=1) as stack:
        yield stack
        log = (stack.data_dir / "logs" / "central.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]


def records(stack: Stack, n: int, first: int = 0) -> list[AuditRecord]:
    key = stack.secrets().audit_key.encode()
    return [AuditRecord(at=datetime.now(UTC).strftime(AT_FORMAT), actor=f"agent-{i}",
                        action="get_twin_profile" if i % 2 else "patch_twin",
                        twin_ref=twin_ref(key, f"twin-{i % 7}"), request_id=f"req-{i}",
                        outcome=200 if i % 5 else 404, region="ams")
            for i in range(first, first + n)]


def post(stack: Stack, body: bytes) -> httpx.Response:
    """``body`` to the central of ``stack``'s cell, signed as a hub signs it."""
    rid = f"audit-{uuid.uuid4().hex[:8]}"
    hop = HopSigner(stack.secrets().central_hop_secret).sign("POST", PATH, None, rid, body=body)
    return httpx.post(stack.topology().writers[0] + PATH, content=body, timeout=10, headers={
        **hop, "x-request-id": rid, "content-type": "application/json"})


def primary(stack: Stack, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.topology().postgres.primary, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def wait_chained(stack: Stack, n: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [(chained, pending)] = primary(stack, "select (select count(*) from audit_log),"
                                              " (select count(*) from audit_pending)")
        if chained == n and pending == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"chained {chained}, pending {pending}; wanted {n} chained")


def run_cli(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack.cli", "audit", "verify", "--data-dir",
         str(stack.data_dir)], cwd=REPO_ROOT, env=base_env(), capture_output=True, text=True,
        timeout=60)


def checkpoint_file(stack: Stack, seq: int) -> Path:
    return stack.data_dir / "blobs" / checkpoint_key(seq)


def test_the_chain_holds_and_any_change_breaks_it(stack: Stack) -> None:
    sent = records(stack, 5)
    assert post(stack, msgspec.json.encode({"records": sent})).status_code == 204
    wait_chained(stack, 5)
    rows = primary(stack, _ROWS)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert [AuditRecord(at=r[1], actor=r[2], action=r[3], twin_ref=r[4], request_id=r[5],
                        outcome=r[6], region=r[7]) for r in rows] == sent  # `at` byte for byte
    deadline = time.monotonic() + 10
    while not checkpoint_file(stack, 5).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert checkpoint_file(stack, 5).exists()

    # Three full batches more: passes of at most 2,048, checkpoints at multiples of 256.
    more = records(stack, 3 * MAX_BATCH, first=5)
    for i in range(3):
        body = msgspec.json.encode({"records": more[i * MAX_BATCH:(i + 1) * MAX_BATCH]})
        assert post(stack, body).status_code == 204
    total = 5 + 3 * MAX_BATCH
    wait_chained(stack, total)
    assert [r[2] for r in primary(stack, _ROWS)] == [r.actor for r in sent + more]
    time.sleep(1)  # the pass's checkpoint is written after its commit

    [home] = verify(stack.data_dir)
    assert home.failure is None, home.line()
    assert (home.cell, home.records) == ("g1", total)
    assert home.checkpoints >= 2
    done = run_cli(stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cell g1: {total} records (last seq {total})" in done.stdout

    # A forged checkpoint: its signature changed.
    path = checkpoint_file(stack, 5)
    original = path.read_bytes()
    cp = msgspec.json.decode(original, type=Checkpoint)
    forged = msgspec.structs.replace(cp, signature=("0" if cp.signature[0] != "0" else "1")
                                     + cp.signature[1:])
    path.write_bytes(msgspec.json.encode(forged))
    [home] = verify(stack.data_dir)
    assert home.failure is not None and home.failure.seq == 5, home.line()
    assert "signature" in home.failure.why
    done = run_cli(stack)
    assert done.returncode == 1 and "seq 5" in done.stdout, done.stdout + done.stderr
    path.write_bytes(original)

    # A row changed in the primary.
    actor = primary(stack, "select actor from audit_log where seq = 2")[0][0]
    primary(stack, "update audit_log set actor = 'mallory' where seq = 2")
    try:
        [home] = verify(stack.data_dir)
        assert home.failure is not None and home.failure.seq == 2, home.line()
        done = run_cli(stack)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "cell g1, seq 2:" in done.stdout
    finally:
        primary(stack, "update audit_log set actor = %s where seq = 2", (actor,))
    [home] = verify(stack.data_dir)
    assert home.failure is None, home.line()


@pytest.mark.parametrize(("body", "status"), [
    (b'{"records": [{"at": "nope"}]}', 422),
    (b'{"records": [{"at": "2026-01-02T03:04:05.000000Z", "actor": "a", "action": "patch_twin",'
     b' "twin_ref": "x", "request_id": "r", "outcome": 200, "region": "ams"}]}', 422),
    (b'{"records": "all"}', 422),
    (b"{", 400),
])
def test_a_bad_batch_is_refused_and_nothing_of_it_is_kept(stack: Stack, body: bytes,
                                                          status: int) -> None:
    [(before,)] = primary(stack, "select count(*) from audit_log")
    answer = post(stack, body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert primary(stack, "select count(*) from audit_pending") == [(0,)]
    time.sleep(0.6)  # a chainer tick
    assert primary(stack, "select count(*) from audit_log") == [(before,)]


def test_checkpoints_are_kept_apart_from_the_chain(stack: Stack) -> None:
    kept = sorted((stack.data_dir / "blobs" / CHECKPOINTS).glob("*.json"))
    assert kept and all(len(p.stem) == 20 and p.stem.isdigit() for p in kept)


def test_every_cell_keeps_a_chain_of_its_own() -> None:
    fleet = CellMap(cells=(Cell("g1", "global", ("ams",)), Cell("ru1", "ru", ("ams",))))
    with running_stack(regions=("ams",), fleet=fleet, services={"postgres", "redis", "central"},
                       central_shards=1) as home:
        ru1 = home.cell_stacks()["ru1"]
        for cell, n in ((home, 3), (ru1, 4)):
            assert post(cell, msgspec.json.encode({"records": records(home, n)})).status_code \
                == 204
            wait_chained(cell, n)
        deadline = time.monotonic() + 10  # each cell's chainer checkpoints at its next tick
        while not (checkpoint_file(ru1, 4).exists() and checkpoint_file(home, 3).exists()) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        audits = verify(home.data_dir)
        assert [(a.cell, a.records, a.checkpoints, a.failure) for a in audits] == [
            ("g1", 3, 1, None), ("ru1", 4, 1, None)]
        # ru1's checkpoint is ru1's: signed for that cell, it does not hold as g1's.
        (home.data_dir / "blobs" / checkpoint_key(4)).write_bytes(
            checkpoint_file(ru1, 4).read_bytes())
        g1 = verify(home.data_dir)[0]
        assert g1.failure is not None and g1.failure.seq == 4, g1.line()
