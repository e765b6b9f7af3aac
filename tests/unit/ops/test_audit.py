"""``memorybank audit verify``'s check (``ops.audit.check_chain``) on chains made by central's
pass (``central.audit.chain``) and checkpoints signed as central signs them: a chain as made
holds; a changed, dropped or reordered record fails at its seq; a chain rewritten with fresh
links, or cut short, fails at the signed checkpoint; a forged checkpoint fails. And the
command over a stack's files: the home cell is ``g1``, its checkpoints are in its blob directory,
its exit status says whether the chain holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ops.audit
from central.audit import CHECKPOINTS, chain, checkpoint_key
from devstack import cli
from mbwire.audit import GENESIS, AuditRecord, sign_checkpoint, twin_ref
from ops.audit import Row, check_chain
from tests.unit.devstack.stack_files import stopped_stack

KEY = b"the-audit-key"
CELL = "g1"


def record(n: int, **changes: Any) -> AuditRecord:
    base = AuditRecord(at=f"2026-01-02T03:04:05.{n:06d}Z", actor=f"agent-{n}",
                       action="patch_twin", twin_ref=twin_ref(KEY, f"twin-{n % 4}"),
                       request_id=f"req-{n}", outcome=200, region="ams")
    return msgspec.structs.replace(base, **changes)


def chained(records: list[AuditRecord], cell: str = CELL) -> list[Row]:
    links = chain(GENESIS, 0, cell, records)
    return [(seq, r, lk) for seq, (r, lk) in enumerate(zip(records, links, strict=True), 1)]


def checkpoint(rows: list[Row], seq: int, key: bytes = KEY, **changes: Any) -> dict[str, bytes]:
    head = rows[seq - 1][2] if seq <= len(rows) else bytes(32)
    cp = sign_checkpoint(key, CELL, seq, head, "2026-01-02T03:04:06.000000Z")
    name = checkpoint_key(seq).rsplit("/", 1)[1]
    return {name: msgspec.json.encode(msgspec.structs.replace(cp, **changes))}


def test_a_chain_as_made_holds() -> None:
    rows = chained([record(n) for n in range(10)])
    found = check_chain(CELL, KEY, rows, {**checkpoint(rows, 4), **checkpoint(rows, 10)})
    assert found.failure is None
    assert (found.records, found.checkpoints) == (10, 2)
    assert "10 records (last seq 10), 2 checkpoints checked: the chain holds" in found.line()


def test_an_empty_chain_holds() -> None:
    found = check_chain(CELL, KEY, [], {})
    assert (found.records, found.checkpoints, found.failure) == (0, 0, None)


def test_a_changed_record_fails_at_its_seq() -> None:
    rows = chained([record(n) for n in range(5)])
    seq, r, lk = rows[1]
    rows[1] = (seq, msgspec.structs.replace(r, actor="mallory"), lk)
    found = check_chain(CELL, KEY, rows, checkpoint(rows, 5))
    assert found.failure is not None and found.failure.seq == 2
    assert found.records == 1
    assert found.line().startswith("cell g1, seq 2: the row does not hash to its link")


def test_a_dropped_record_fails_where_it_was() -> None:
    rows = chained([record(n) for n in range(5)])
    found = check_chain(CELL, KEY, rows[:2] + rows[3:], {})
    assert found.failure is not None and found.failure.seq == 3
    assert "from seq 2 to 4" in found.failure.why
    # Renumbered to close the gap, the next link no longer holds.
    renumbered = rows[:2] + [(s - 1, r, lk) for s, r, lk in rows[3:]]
    found = check_chain(CELL, KEY, renumbered, {})
    assert found.failure is not None and found.failure.seq == 3


def test_swapped_records_fail_at_the_first() -> None:
    rows = chained([record(n) for n in range(5)])
    (s2, r2, l2), (s3, r3, l3) = rows[1], rows[2]
    rows[1], rows[2] = (s2, r3, l2), (s3, r2, l3)  # the contents moved, the links stayed
    found = check_chain(CELL, KEY, rows, {})
    assert found.failure is not None and found.failure.seq == 2


def test_a_chain_rewritten_with_fresh_links_fails_at_the_signed_checkpoint() -> None:
    records = [record(n) for n in range(6)]
    rows = chained(records)
    signed = checkpoint(rows, 4)
    forged = chained([*records[:1], record(1, actor="mallory"), *records[2:]])
    found = check_chain(CELL, KEY, forged, signed)
    assert found.failure is not None and found.failure.seq == 4
    assert "rewritten" in found.failure.why


def test_a_chain_cut_short_fails_at_a_checkpoint_past_its_end() -> None:
    rows = chained([record(n) for n in range(6)])
    found = check_chain(CELL, KEY, rows[:4], checkpoint(rows, 6))
    assert found.failure is not None and found.failure.seq == 6
    assert "ends at seq 4" in found.failure.why


def test_a_forged_or_misplaced_checkpoint_fails() -> None:
    rows = chained([record(n) for n in range(6)])
    for files in (checkpoint(rows, 3, signature="0" * 64),
                  checkpoint(rows, 3, key=b"another key"),
                  checkpoint(rows, 3, cell="ru1"),
                  {"00000000000000000004.json": checkpoint(rows, 3)["00000000000000000003.json"]},
                  {"00000000000000000003.json": b"{not json"}):
        found = check_chain(CELL, KEY, rows, files)
        assert found.failure is not None and found.failure.seq in (3, 4), files
    found = check_chain(CELL, KEY, rows, {"notes.txt": b""})
    assert found.failure is not None and found.failure.seq is None


def test_another_cells_chain_does_not_hold_here() -> None:
    rows = chained([record(n) for n in range(3)], cell="ru1")
    found = check_chain(CELL, KEY, rows, {})
    assert found.failure is not None and found.failure.seq == 1


@given(st.integers(2, 12), st.data())
def test_any_change_to_any_field_fails_at_that_seq(n: int, data: st.DataObject) -> None:
    rows = chained([record(i) for i in range(n)])
    at = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(AuditRecord.__struct_fields__))
    seq, r, lk = rows[at]
    value = getattr(r, field)
    changed = value + 1 if isinstance(value, int) else value + "x"
    rows[at] = (seq, msgspec.structs.replace(r, **{field: changed}), lk)
    found = check_chain(CELL, KEY, rows, checkpoint(rows, n))
    assert found.failure is not None and found.failure.seq == seq


# -- the command, over a stack's files (the chain's rows given, not read from a primary) ------

def test_the_command_checks_the_home_cell_against_its_blob_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    key = stopped_stack(tmp_path).audit_key.encode()
    rows = chained([record(n) for n in range(3)])
    directory = tmp_path / "blobs" / CHECKPOINTS
    directory.mkdir(parents=True)
    for name, data in checkpoint(rows, 3, key=key).items():
        (directory / name).write_bytes(data)
    monkeypatch.setattr(ops.audit, "read_rows", lambda url: iter(rows))
    assert cli.main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    assert said == "cell g1: 3 records (last seq 3), 1 checkpoint checked: the chain holds\n"
    rows[0] = (1, record(0, outcome=500), rows[0][2])
    assert cli.main(["audit", "--data-dir", str(tmp_path), "verify"]) == 1
    assert capsys.readouterr().out.startswith("cell g1, seq 1: ")


def test_the_command_needs_a_stack(tmp_path: Path) -> None:
    assert cli.main(["audit", "verify", "--data-dir", str(tmp_path / "none")]) == 3
    assert not (tmp_path / "none").exists()
