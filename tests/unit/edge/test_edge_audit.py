"""Cache hits held for the audit trail at a PoP (mbedge.audit): sent by count or age, one body
per cell, kept for the next send when a hub cannot take them, and bounded."""

from __future__ import annotations

import msgspec

from mbedge.audit import HitLog
from mbwire.audit import EdgeHits
from mbwire.cells import Cell

G1, RU = Cell("g1"), Cell("ru1", "ru")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _add(log: HitLog, cell: Cell, n: int) -> bool:
    due = False
    for i in range(n):
        due = log.add(cell, f"sub-{i}", "get_twin_profile", f"tw{i}", f"rid-{i}", "ams")
    return due


async def test_hits_are_due_by_count_or_age_and_sent_one_body_per_cell() -> None:
    clock = Clock()
    log = HitLog(clock, flush_items=3, flush_s=0.25)
    assert not _add(log, G1, 1)
    clock.now = 0.3
    assert log.due()  # the oldest is old enough
    _add(log, RU, 2)
    sent: dict[str, EdgeHits] = {}

    async def send(cell: Cell, body: bytes) -> None:
        sent[cell.name] = msgspec.json.decode(body, type=EdgeHits)

    await log.send(send)
    assert {k: [h.twin_id for h in v.hits] for k, v in sent.items()} == {
        "g1": ["tw0"], "ru1": ["tw0", "tw1"]}
    assert len(log) == 0 and not log.due()
    assert _add(log, G1, 3)  # due by count


async def test_hits_a_hub_could_not_take_wait_for_the_next_send_within_the_bound() -> None:
    log = HitLog(Clock(), max_items=4)

    async def down(cell: Cell, body: bytes) -> None:
        raise OSError("no hub")

    _add(log, G1, 3)
    await log.send(down)
    assert len(log) == 3 and log.dropped == 0
    _add(log, G1, 3)  # 6 into room for 4: the two oldest go, counted
    assert len(log) == 4 and log.dropped == 2
