"""The consistency token: for each cell a session wrote to or read from, an LSN of that cell's
primary at or after the end of a commit record.

A replica of a cell has everything a token covers for that cell once
``pg_last_wal_replay_lsn() >= lsn``. On the wire a token is up to 16 comma-separated parts, one
per cell, each ``[<cell>.]L`` plus 16 hex digits; the home cell's part has no prefix, so a token
of a session that only saw the home cell is the single-cell token it always was, and tokens
issued before cells stay valid. Parts of one cell sort as strings (Redis Lua compares them).

Every hub and central process serves one cell (````mbwire.cells.serve`` at start): there
``ConsistencyToken`` is that cell's position, printed with its prefix, and parsed from a
multi-cell token as its own part (a token naming no part of it asks nothing of it). The edge
and the SDK, which see every cell, use ``Tokens``: the greatest position per cell."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mbwire.cells import CELL_NAME_PATTERN, HOME, served_prefix
from mbwire.errors import BadRequest

MAX_PARTS = 16
_PART = rf"(?:{CELL_NAME_PATTERN}\.)?L[0-9A-F]{{16}}"
TOKEN_PATTERN = rf"^{_PART}(?:,{_PART}){{0,{MAX_PARTS - 1}}}$"
_TOKEN = re.compile(TOKEN_PATTERN)

@dataclass(frozen=True, order=True, slots=True)
class ConsistencyToken:
    """A position in the cell this process serves."""

    lsn: int

    def __str__(self) -> str:
        prefix = served_prefix()
        return f"{prefix}.L{self.lsn:016X}" if prefix else f"L{self.lsn:016X}"

    @classmethod
    def parse(cls, raw: str) -> ConsistencyToken:
        """This process's cell's part of a (multi-cell) token; 0 when it names none."""
        return cls(Tokens.parse(raw).positions.get(served_prefix(), 0))

    @classmethod
    def from_pg_lsn(cls, text: str) -> ConsistencyToken:
        """Postgres prints an LSN as ``HI/LO`` in hex."""
        hi, lo = text.split("/")
        return cls((int(hi, 16) << 32) | int(lo, 16))

    def to_pg_lsn(self) -> str:
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True, slots=True)
class Tokens:
    """A session's positions, per cell (``""``: the home cell)."""

    positions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str) -> Tokens:
        raw = raw.strip()
        if not _TOKEN.match(raw):
            raise BadRequest(
                f"X-Consistency-Token {raw[:40]!r} is not a token this service issued")
        positions: dict[str, int] = {}
        for part in raw.split(","):
            cell, _, lsn = part.rpartition(".")
            cell = "" if cell == HOME else cell  # the home cell's part, however written
            if cell in positions:
                raise BadRequest(f"X-Consistency-Token names cell {cell or 'home'!r} twice")
            positions[cell] = int(lsn[1:], 16)
        return cls(positions)

    @classmethod
    def maybe(cls, raw: str | None) -> Tokens | None:
        """``raw`` parsed, or None when absent or not one of ours."""
        if not raw:
            return None
        try:
            return cls.parse(raw)
        except BadRequest:
            return None

    def __str__(self) -> str:
        cells = sorted(self.positions, key=lambda c: (c != "", c))
        return ",".join(f"{c}.L{self.positions[c]:016X}" if c else f"L{self.positions[c]:016X}"
                        for c in cells)

    def __bool__(self) -> bool:
        return bool(self.positions)

    def merge(self, other: Tokens | None) -> Tokens:
        """The greatest position per cell of both (at most ``MAX_PARTS`` cells: beyond that the
        home cell's part and then the first cells by name are kept; a dropped part only weakens
        read-your-writes to its cell)."""
        if not other:
            return self
        out = dict(self.positions)
        for cell, lsn in other.positions.items():
            out[cell] = max(out.get(cell, 0), lsn)
        if len(out) > MAX_PARTS:
            out = dict(sorted(out.items(), key=lambda kv: (kv[0] != "", kv[0]))[:MAX_PARTS])
        return Tokens(out)

    def answers(self, wanted: Tokens) -> bool:
        """Whether an answer carrying these positions reflects every write ``wanted`` names in
        the cells it answered from (cells it did not answer from are not its business)."""
        return all(wanted.positions.get(cell, 0) <= lsn for cell, lsn in self.positions.items())

    def covers(self, other: Tokens) -> bool:
        """At or after ``other`` in every cell ``other`` names."""
        return all(self.positions.get(c, -1) >= lsn for c, lsn in other.positions.items())
