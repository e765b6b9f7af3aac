"""No file of the running stack holds a twin's personal data in plaintext, before or after its
erasure (issue "Personal data", items 1 and 2): markers written into a profile, a merged
update, an event's payload, a trajectory step and a text artifact are looked for, byte for
byte, in every file under the stack's directory (logs, blobs, key stores, the hubs' search
index segments) and every Postgres data directory (heap, TOAST, WAL of the primary, the
standby and every replica). A control marker written where plaintext is allowed (an event's
type) must be found by the same scan, so a scan that reads nothing fails.

After the erasure, a sealed value copied off the primary before it (what a base backup or an
unvacuumed dead tuple still holds) no longer opens with the cell's key store."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import pg_data_root
from devstack.procs import unprivileged
from mbwire import NotFound as KeyGone
from memorybank_client import MemoryBank, NotFound
from sealing import Keyring

from .conftest import LiveStack

pytestmark = pytest.mark.integration
CHUNK = 1 << 22


def _roots(live: LiveStack) -> list[Path]:
    data = live.stack.data_dir
    return [data, pg_data_root(data, unprivileged())]


def _found(roots: list[Path], markers: list[bytes]) -> dict[bytes, list[str]]:
    """Each marker's files (read in overlapping chunks, so none is missed at a boundary)."""
    hits: dict[bytes, list[str]] = {m: [] for m in markers}
    longest = max(map(len, markers))
    seen: set[Path] = set()
    for root in roots:
        for path in root.rglob("*"):
            if path in seen or not path.is_file() or path.is_symlink():
                continue
            seen.add(path)
            try:
                with path.open("rb") as f:
                    tail = b""
                    while block := f.read(CHUNK):
                        window = tail + block
                        for m in markers:
                            if m in window and str(path) not in hits[m]:
                                hits[m].append(str(path))
                        tail = window[-longest:]
            except (PermissionError, FileNotFoundError):
                continue  # a file gone meanwhile (a recycled WAL segment, a temp file)
    return hits


def _checkpoint(live: LiveStack) -> None:
    """Every Postgres node writes its dirty pages out, so heap files hold what WAL does."""
    urls = [live.topology.postgres.primary, *live.topology.postgres.replicas.values()]
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("checkpoint")


def test_no_file_of_the_stack_holds_a_twin_in_plaintext_and_erasure_shreds_every_copy(
        live: LiveStack) -> None:
    run = uuid.uuid4().hex[:12]
    # Each marker random on its own: a compressed file (Qdrant's LZ4 payload pages) stores a
    # run of bytes it has seen before as a back-reference, which a byte scan would miss.
    marks = {k: f"zq{uuid.uuid4().hex}" for k in ("profile", "patch", "event", "step",
                                                   "artifact")}
    control = f"zq{uuid.uuid4().hex}"
    owner = f"sealed-{run}"
    edges = live.topology.edges
    with MemoryBank(edges["ams"], live.token(owner, tier="pro", role="participant")) as mb:
        twin = mb.twins.create({"name": "Ada", "note": marks["profile"]}).twin_id
        mb.twins.patch(twin, {"diary": f"met {marks['patch']} today"})
        mb.twins.log_events([{"twin_id": twin, "type": control,
                              "payload": {"text": f"called {marks['event']}"}}])
        mb.twins.update_trajectory(twin, f"walk to {marks['step']}", 0)
        artifact = mb.artifacts.upload(
            twin, f"a letter mentioning {marks['artifact']} twice: {marks['artifact']}".encode(),
            "text/plain")
        token = mb.consistency_token
        for edge in edges.values():  # every region has it (and has indexed it) before the scan
            with MemoryBank(edge, live.token(owner, tier="pro", role="participant")) as there:
                there.consistency_token = token
                assert there.twins.get(twin).profile["note"] == marks["profile"]
                assert there.artifacts.download(artifact.artifact_id).startswith(b"a letter")
        _checkpoint(live)
        wanted = [m.encode() for m in marks.values()]
        before = _found(_roots(live), [*wanted, control.encode()])
        assert before.pop(control.encode()), "the scan found the control marker nowhere"
        assert before == {m: [] for m in wanted}, before

        receipt = mb.twins.erase(twin).receipt
        assert receipt.held_before["data_key"] == 1 and receipt.held_after["data_key"] == 0
        keys = live.stack.data_dir / "keys"
        assert receipt.key_id and _found([keys], [receipt.key_id.encode()]) == {
            receipt.key_id.encode(): []}
        for edge in edges.values():
            with MemoryBank(edge, live.token(owner, tier="pro", role="participant")) as there:
                there.consistency_token = mb.consistency_token
                with pytest.raises(NotFound):
                    there.twins.get(twin)
    _checkpoint(live)
    after = _found(_roots(live), wanted)
    assert after == {m: [] for m in wanted}, after


async def test_a_copy_taken_before_the_erasure_does_not_open_after_it(live: LiveStack) -> None:
    run = uuid.uuid4().hex[:12]
    owner = f"sealed-copy-{run}"
    with MemoryBank(live.topology.edges["ams"],
                    live.token(owner, tier="pro", role="participant")) as mb:
        twin = mb.twins.create({"secret": f"zqcopy{run}"}).twin_id
        with psycopg.connect(live.topology.postgres.primary) as conn:
            row = conn.execute("select profile from twins where twin_id = %s",
                               (twin,)).fetchone()
        assert row is not None
        copy = bytes(row[0])
        ring = Keyring.configure(keys_dir=str(live.stack.data_dir / "keys"))
        assert (await ring.key(twin)).open_json("profile", copy)["secret"] == f"zqcopy{run}"
        mb.twins.erase(twin)
    with pytest.raises(KeyGone):
        await Keyring.configure(keys_dir=str(live.stack.data_dir / "keys")).key(twin)


def test_a_key_encryption_key_rotation_runs_under_traffic_without_a_failure(
        live: LiveStack) -> None:
    """``memorybank keys rotate`` while twins are created and read in every region: no request
    fails, every data key ends up wrapped under the new key-encryption key, the old one is
    gone from the key store, and twins made before it still read back."""
    from ops import keys

    run = uuid.uuid4().hex[:8]
    owner = f"rotate-{run}"
    edges = live.topology.edges
    done: list[str] = []
    with MemoryBank(edges["ams"], live.token(owner, tier="enterprise", role="participant")) as mb:
        before = [mb.twins.create({"n": i}).twin_id for i in range(5)]
        rotating = threading.Thread(target=lambda: done.extend(keys.rotate(live.stack.data_dir)))
        rotating.start()
        made = []
        while rotating.is_alive() or len(made) < 5:
            made.append(mb.twins.create({"n": len(made)}).twin_id)
        rotating.join()
        for edge in edges.values():
            with MemoryBank(edge, live.token(owner, tier="enterprise")) as there:
                there.consistency_token = mb.consistency_token
                for twin in before + made:
                    assert "n" in there.twins.get(twin).profile
    assert len(done) == 1 and "retired" in done[0], done
    old, new = done[0].split("key-encryption key ")[1].split(",")[0].split(" -> ")
    kek = live.stack.data_dir / "keys" / "kek"
    assert not (kek / f"{old}.key").exists() and (kek / f"{new}.key").exists()
    status = keys.status(live.stack.data_dir)
    assert f"under {new}" in status[0] and old not in status[0], status
