"""Bodies nested thousands deep: the edge peeks into some (a batch's cost, a body's
idempotency key) with msgspec, which raises ``RecursionError`` on them; the edge must still
forward them (the hub answers with a 422), never fail with a 500 of its own."""

from __future__ import annotations

import pytest

from tests.unit.edge.edge_fakes import make_rig, token

DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.mark.parametrize("path,body", [
    ("/v1/batch", b'{"queries": [' + DEEP + b"]}"),
    ("/v1/transactions", b'{"x": ' + DEEP + b"}"),
    ("/v1/events", b'{"events": [' + DEEP + b"]}"),
])
async def test_a_deeply_nested_body_is_forwarded_not_a_500(path: str, body: bytes) -> None:
    rig = make_rig()
    r = await rig.call("POST", path, token=token(), body=body)
    assert r.status == 200
    assert rig.hubs.seen[-1][1].body == body
