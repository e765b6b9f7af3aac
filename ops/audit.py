"""``memorybank audit verify``: checks every cell's audit trail (``mbwire.audit``).

    memorybank audit verify [--data-dir DIR]

For the stack in DATA_DIR and every other cell's stack, it reads the cell's ``audit_log`` from its
primary in seq order (a server-side cursor: the chain is streamed, never held), checks that the
seqs run 1..n without a gap and recomputes every link from ``GENESIS``, each from its row alone
(a changed, dropped or reordered row breaks its link). Then every checkpoint central signed into
the cell's blob directory (``<cell dir>/blobs/audit/checkpoints/*.json``) must hold under the
fleet's audit key and name the link recomputed at its seq: a chain rewritten from some row on
with fresh links fails there, and one cut short fails at a checkpoint past its end.

One line per cell; exit 0 only when every cell's chain and checkpoints hold, else 1 (each
failing cell's line names the first failure: its seq, and why)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg

from central.audit import CHECKPOINTS
from devstack.launcher import Stack
from mbwire.audit import GENESIS, AuditRecord, Checkpoint, checkpoint_holds, link

SINGLE_CELL = "g1"  # a stack without a fleet is the home cell (central's default CENTRAL_CELL)
_FILE = re.compile(r"^(\d{20})\.json$")
# ``at`` as the record had it (central takes only this form, which timestamptz keeps exactly).
_ROWS = """
select seq, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, action,
       twin_ref, request_id, outcome, region, link
from audit_log order by seq
"""
Row = tuple[int, AuditRecord, bytes]  # seq, the record rebuilt from its row, the stored link


@dataclass(frozen=True, slots=True)
class Failure:
    seq: int | None  # None: not about one record (the chain could not be read)
    why: str


@dataclass(frozen=True, slots=True)
class CellAudit:
    cell: str
    records: int      # checked and holding, from seq 1
    checkpoints: int  # checked and holding
    failure: Failure | None = None

    def line(self) -> str:
        counts = (f"{self.records} records (last seq {self.records}), {self.checkpoints} "
                  f"checkpoint{'' if self.checkpoints == 1 else 's'} checked")
        if self.failure is None:
            return f"cell {self.cell}: {counts}: the chain holds"
        where = f", seq {self.failure.seq}" if self.failure.seq is not None else ""
        return f"cell {self.cell}{where}: {self.failure.why} (before it: {counts})"


def check_chain(cell: str, key: bytes, rows: Iterable[Row],
                checkpoints: Mapping[str, bytes]) -> CellAudit:
    """The cell's chain (``rows`` in seq order) and its checkpoint files (name → bytes), checked;
    the first failure by seq, if any. Pure: no I/O, so a unit test drives it."""
    wanted = {int(m[1]) for name in checkpoints if (m := _FILE.match(name))}
    links: dict[int, bytes] = {}
    broken: Failure | None = None
    prev, last = GENESIS, 0
    for seq, record, stored in rows:
        if seq != last + 1:
            broken = Failure(last + 1, f"missing: the chain goes from seq {last} to {seq}")
            break
        prev = link(prev, seq, cell, record)
        if prev != stored:
            broken = Failure(seq, "the row does not hash to its link: it, or a row before it, "
                                  "was changed, dropped or moved")
            break
        if seq in wanted:
            links[seq] = prev
        last = seq
    held, first = 0, broken
    upto = broken.seq if broken is not None and broken.seq is not None else math.inf
    for name in sorted(checkpoints):
        match = _FILE.match(name)
        if match is None:
            wrong: Failure | None = Failure(None, f"checkpoint file {name} is not <seq>.json")
        else:
            seq = int(match[1])
            if seq >= upto:
                continue  # the chain is broken before it already
            wrong = _check_checkpoint(cell, key, seq, checkpoints[name], links.get(seq), last)
        if wrong is None:
            held += 1
        elif first is None or (wrong.seq or 0) < (first.seq or 0):
            first = wrong
    return CellAudit(cell, last, held, first)


def _check_checkpoint(cell: str, key: bytes, seq: int, data: bytes, at_seq: bytes | None,
                      last: int) -> Failure | None:
    try:
        checkpoint = msgspec.json.decode(data, type=Checkpoint)
    except msgspec.DecodeError as exc:
        return Failure(seq, f"checkpoint {seq} is not readable: {exc}")
    if checkpoint.seq != seq or checkpoint.cell != cell:
        return Failure(seq, f"checkpoint {seq} names cell {checkpoint.cell!r}, seq "
                            f"{checkpoint.seq}: not this file's")
    if not checkpoint_holds(key, checkpoint):
        return Failure(seq, f"checkpoint {seq}'s signature does not hold (forged, or signed "
                            "with another key)")
    if at_seq is None:
        return Failure(seq, f"a signed checkpoint is at seq {seq} but the chain ends at seq "
                            f"{last}: records were dropped from its end")
    if checkpoint.hash != at_seq.hex():
        return Failure(seq, f"the chain's link at seq {seq} is not the one checkpoint {seq} "
                            "signed: the chain was rewritten up to it")
    return None


def read_rows(url: str) -> Iterator[Row]:
    """The cell's chain from its primary, in seq order, through a server-side cursor."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.read_only = True
        with conn.cursor(name="audit_verify") as cur:
            cur.itersize = 2048
            cur.execute(_ROWS)
            for r in cur:
                yield r[0], AuditRecord(at=r[1], actor=r[2], action=r[3], twin_ref=r[4],
                                        request_id=r[5], outcome=r[6], region=r[7]), bytes(r[8])


def read_checkpoints(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def verify_cell(cell: str, stack: Stack, key: bytes) -> CellAudit:
    """One cell's stack: its primary's chain against its blob directory's checkpoints."""
    checkpoints = read_checkpoints(stack.data_dir / "blobs" / CHECKPOINTS)
    try:
        return check_chain(cell, key, read_rows(stack.topology().postgres.primary), checkpoints)
    except psycopg.errors.UndefinedTable:
        why = "no audit_log table: the cell's central has not applied migration 0009"
    except psycopg.Error as exc:
        why = f"cannot read the chain from the cell's primary: {str(exc).strip()[:200]}"
    return CellAudit(cell, 0, 0, Failure(None, why))


def verify(data_dir: Path) -> list[CellAudit]:
    """Every cell of the stack in ``data_dir``: the home cell first, then the others."""
    home = Stack(data_dir)
    links = home.links()
    key = home.secrets().audit_key.encode()
    stacks = {links.cell if links else SINGLE_CELL: home, **home.cell_stacks()}
    return [verify_cell(cell, stack, key) for cell, stack in stacks.items()]
