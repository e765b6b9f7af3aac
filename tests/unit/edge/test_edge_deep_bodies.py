"""Bodies nested thousands deep: the edge peeks into some (a batch's cost, a body's
idempotency key) with msgspec, which raises ``RecursionError`` on them; the rules must still
answer (cost 1, no key) so the request is forwarded and the hub answers with a 422, never a 500
of the edge's own."""

from __future__ import annotations

import pytest

from mbwire.actions import Action
from mbwire.rules import cost_of, idempotency_key
from tests.unit.edge.edge_fakes import make_rig, token

DEEP = b"[" * 10_000 + b"]" * 10_000
BATCH = Action(name="b", method="POST", path="/v1/batch", summary="", writes=False,
               cost_items="queries", max_items=50)
TRANSFER = Action(name="t", method="POST", path="/v1/transactions", summary="", writes=True,
                  idempotency=("body",))
EVENTS = Action(name="e", method="POST", path="/v1/events", summary="", writes=True,
                idempotency=("items",), cost_items="events", max_items=100)


@pytest.mark.parametrize("action,body", [
    (BATCH, b'{"queries": [' + DEEP + b"]}"),
    (TRANSFER, b'{"x": ' + DEEP + b"}"),
    (EVENTS, b'{"events": [' + DEEP + b"]}"),
])
def test_rules_answer_for_a_deeply_nested_body(action: Action, body: bytes) -> None:
    assert cost_of(action, body) == 1
    assert idempotency_key(action, None, body) is None


async def test_a_deeply_nested_body_is_forwarded_not_a_500() -> None:
    rig = make_rig()
    body = b'{"profile": ' + DEEP + b"}"
    r = await rig.call("POST", "/v1/twins", token=token(), body=body)
    assert r.status == 200
    assert rig.hubs.seen[-1][1].body == body
