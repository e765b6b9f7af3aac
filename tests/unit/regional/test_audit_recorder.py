"""The hub's audit recorder: which answers it records, what it sends central, and its bounds
(a buffer that never grows past its size, records kept when central cannot take them)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec
import pytest

from mbwire import UpstreamUnavailable
from mbwire.actions import BY_NAME
from mbwire.audit import AuditBatch, twin_ref
from mbwire.types import Principal
from regional.audit import INTAKE_PATH, AuditRecorder
from regional.central_client import Forwarded

ALICE = Principal(sub="alice", tier="pro", role="participant")
WHEN = dt.datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=dt.UTC)


class Central:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.fail = fail

    async def forward(self, method: str, path: str, *, body: bytes = b"", **kw: Any) -> Forwarded:
        if self.fail:
            self.fail -= 1
            raise UpstreamUnavailable("central is down", retry_after=1)
        self.sent.append((method, path, body))
        return Forwarded(204, b"", {})


def recorder(central: Central, **kw: Any) -> AuditRecorder:
    return AuditRecorder(central, "k" * 32, "ams", clock=lambda: WHEN, **kw)  # type: ignore[arg-type]


def scope(path: str, principal: Principal | None = ALICE) -> dict[str, Any]:
    return {"path": path, "state": {"principal": principal} if principal else {}}


def test_twin_actions_are_recorded_by_pseudonym_and_nothing_else() -> None:
    r = recorder(Central())
    r.after_answer(scope("/v1/twins/ru1~ada/events"), BY_NAME["list_events"], 200, "rq1")
    r.after_answer(scope("/v1/twins/ada"), BY_NAME["get_twin_profile"], 403, "rq2")
    r.after_answer(scope("/v1/knowledge/query"), BY_NAME["query_knowledge"], 200, "rq3")
    r.after_answer(scope("/v1/twins/ada", None), BY_NAME["get_twin_profile"], 401, "rq4")
    r.after_answer(scope("/healthz"), None, 200, "rq5")
    assert [(x.action, x.outcome, x.request_id) for x in r.buffer] == [
        ("list_events", 200, "rq1"), ("get_twin_profile", 403, "rq2")]
    first = r.buffer[0]
    assert first.twin_ref == twin_ref(b"k" * 32, "ru1~ada") and "ada" not in first.twin_ref
    assert first.at == "2026-12-04T12:00:00.123456Z" and first.actor == "alice"


def test_a_flush_sends_batches_to_central_and_empties_the_buffer() -> None:
    central = Central()
    r = recorder(central, batch=2)
    for i in range(5):
        r.record(ALICE, "get_twin_profile", "ada", f"rq{i}", 200)
    asyncio.run(r.flush())
    assert [len(msgspec.json.decode(b, type=AuditBatch).records) for _, _, b in central.sent] \
        == [2, 2, 1]
    assert {(m, p) for m, p, _ in central.sent} == {("POST", INTAKE_PATH)}
    assert not r.buffer


def test_records_central_cannot_take_are_kept_in_order_for_the_next_flush() -> None:
    central = Central(fail=1)
    r = recorder(central)
    for i in range(3):
        r.record(ALICE, "patch_twin", "ada", f"rq{i}", 200)
    asyncio.run(r.flush())
    assert [x.request_id for x in r.buffer] == ["rq0", "rq1", "rq2"] and not central.sent
    asyncio.run(r.flush())
    sent = msgspec.json.decode(central.sent[0][2], type=AuditBatch).records
    assert [x.request_id for x in sent] == ["rq0", "rq1", "rq2"]


@pytest.mark.parametrize("fail", [0, 1])
def test_the_buffer_never_holds_more_than_its_bound(fail: int) -> None:
    central = Central(fail=fail)
    r = recorder(central, buffer_max=4, batch=4)
    for i in range(10):
        r.record(ALICE, "get_twin_profile", "ada", f"rq{i}", 200)
    assert len(r.buffer) == 4 and r.dropped == 6
    assert [x.request_id for x in r.buffer] == ["rq6", "rq7", "rq8", "rq9"]  # the newest
    asyncio.run(r.flush())
    assert len(r.buffer) <= 4


def test_without_a_key_nothing_is_recorded() -> None:
    r = AuditRecorder(Central(), "", "ams")  # type: ignore[arg-type]
    r.record(ALICE, "get_twin_profile", "ada", "rq", 200)
    assert not r.buffer


def test_a_batch_central_refuses_is_dropped_and_counted_never_retried() -> None:
    class Refusing(Central):
        async def forward(self, method: str, path: str, *, body: bytes = b"",
                          **kw: Any) -> Forwarded:
            self.sent.append((method, path, body))
            return Forwarded(422, b"{}", {})

    central = Refusing()
    r = recorder(central)
    r.record(ALICE, "get_twin_profile", "ada", "rq", 200)
    asyncio.run(r.flush())
    asyncio.run(r.flush())
    assert not r.buffer and r.dropped == 1 and len(central.sent) == 1
