"""An erasure receipt holds only under its cell's key and only as signed: any change to what
it says (counts, twin, cell, time) breaks it."""

from __future__ import annotations

import msgspec
import pytest

from mbwire.audit import ErasureReceipt, receipt_holds, sign_receipt

KEY = b"k" * 32
RECEIPT = sign_receipt(KEY, ErasureReceipt(
    receipt_id="ru1~abc", twin_ref="0" * 64, cell="ru1", erased_at="2026-12-04T12:00:00.000000Z",
    erased_by="mia", held_before={"profile": 1, "events": 3}, held_after={"profile": 0,
                                                                          "events": 0},
    caches="feed", audit_seq=41))


def test_a_receipt_holds_as_signed() -> None:
    assert receipt_holds(KEY, RECEIPT)
    assert not receipt_holds(b"x" * 32, RECEIPT)


@pytest.mark.parametrize("change", [
    {"held_after": {"profile": 0, "events": 1}}, {"twin_ref": "1" * 64}, {"cell": "g1"},
    {"erased_at": "2026-12-05T12:00:00.000000Z"}, {"audit_seq": 40},
])
def test_any_change_breaks_it(change: dict[str, object]) -> None:
    assert not receipt_holds(KEY, msgspec.structs.replace(RECEIPT, **change))
