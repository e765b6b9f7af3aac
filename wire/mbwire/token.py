"""The consistency token: an LSN of the primary at or after the end of a write's commit record.

A replica has everything a token covers once ``pg_last_wal_replay_lsn() >= lsn``. Opaque to clients;
``L`` plus 16 hex digits, so tokens also sort as strings (Redis Lua compares them that way)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mbwire.errors import BadRequest

TOKEN_PATTERN = r"^L[0-9A-F]{16}$"
_TOKEN = re.compile(TOKEN_PATTERN)


@dataclass(frozen=True, order=True, slots=True)
class ConsistencyToken:
    lsn: int

    def __str__(self) -> str:
        return f"L{self.lsn:016X}"

    @classmethod
    def parse(cls, raw: str) -> ConsistencyToken:
        raw = raw.strip()
        if not _TOKEN.match(raw):
            raise BadRequest(f"X-Consistency-Token {raw[:40]!r} is not a token this service issued")
        return cls(int(raw[1:], 16))

    @classmethod
    def from_pg_lsn(cls, text: str) -> ConsistencyToken:
        """Postgres prints an LSN as ``HI/LO`` in hex."""
        hi, lo = text.split("/")
        return cls((int(hi, 16) << 32) | int(lo, 16))

    def to_pg_lsn(self) -> str:
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"
