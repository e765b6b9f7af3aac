"""Cache hits in the audit trail. A twin read this PoP answers from its cache never reaches a
hub, so the PoP records it here (``HitLog.add``) and sends what it holds to a hub of the twin's
cell (``POST /internal/edge-hits``, an anonymous signed hop), which records each hit as it
records its own answers (regional/audit.py). Sent in the background (the Worker's
``waitUntil``, an asyncio task locally) once ``flush_items`` (64) are held or the oldest is
``flush_s`` (0.25 s) old, checked on each hit, so a hit costs an append.

Bounded: at most ``max_items`` (1,024) held per PoP; beyond it, the oldest are dropped and
counted (``dropped``). What a crash of the isolate or process can lose: the hits not yet sent
(at most 64, or 0.25 s of them, and the sends in flight)."""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from mbwire.audit import EdgeHit, EdgeHits
from mbwire.cells import Cell

log = logging.getLogger("mbedge.audit")
Send = Callable[[Cell, bytes], Awaitable[None]]


@dataclass(slots=True)
class _Held:
    cell: Cell
    hit: EdgeHit
    at: float


class HitLog:
    def __init__(self, clock: Callable[[], float], *, max_items: int = 1024,
                 flush_items: int = 64, flush_s: float = 0.25) -> None:
        self._clock = clock
        self.flush_items, self.flush_s = flush_items, flush_s
        self._held: collections.deque[_Held] = collections.deque(maxlen=max_items)
        self.dropped = 0
        self._sending = False

    def __len__(self) -> int:
        return len(self._held)

    def add(self, cell: Cell, actor: str, action: str, twin_id: str, request_id: str,
            pop: str) -> bool:
        """Records one hit; True when the log should be sent now."""
        if len(self._held) == self._held.maxlen:
            self.dropped += 1
        at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._held.append(_Held(cell, EdgeHit(at=at, actor=actor, action=action,
                                              twin_id=twin_id, request_id=request_id, pop=pop),
                                self._clock()))
        return self.due()

    def due(self) -> bool:
        if self._sending or not self._held:
            return False
        return (len(self._held) >= self.flush_items
                or self._clock() - self._held[0].at >= self.flush_s)

    async def send(self, send: Send) -> None:
        """Sends everything held, one body per cell. A cell whose hub could not take it keeps
        its hits for the next send (within the bound)."""
        if self._sending:
            return
        self._sending = True
        try:
            taken = list(self._held)
            self._held.clear()
            by_cell: dict[str, list[_Held]] = {}
            for held in taken:
                by_cell.setdefault(held.cell.name, []).append(held)
            for group in by_cell.values():
                body = msgspec.json.encode(EdgeHits(hits=[g.hit for g in group]))
                try:
                    await send(group[0].cell, body)
                except Exception as exc:  # a hub's problem, or none reachable: keep them
                    room = (self._held.maxlen or 0) - len(self._held)
                    kept = group[-room:] if 0 < room < len(group) else group if room else []
                    self.dropped += len(group) - len(kept)
                    self._held.extendleft(reversed(kept))
                    log.warning("audit of %d cache hits not sent to cell %s: %s",
                                len(group), group[0].cell.name, exc)
        finally:
            self._sending = False
