"""A batch item meets exactly its single action's parameter rules (the same 422 problem, the
detail word for word), and fails alone: no item, however bad, can make the batch a 500."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import Principal, Unprocessable
from mbwire.actions import BY_NAME
from mbwire.rules import check_query
from mbwire.types import BatchItem
from regional import batch

ALICE = Principal(sub="alice", tier="pro")
BAD_LIMITS = ["²", "③", "①", "\u0665", "5\n", "-1", "1000", "", "1" * 5000]


async def answer(action: str, **params: str) -> tuple[int, dict[str, Any]]:
    query = BatchItem(action=action, params=params)
    # No connection: every check here must refuse before the snapshot is asked anything.
    item = batch.Item(ALICE, query.params, None, None, None)  # type: ignore[arg-type]
    result = await batch.answer(query, item, "/v1/batch#/queries/3", "req-1")
    assert isinstance(result.body, dict)
    return result.status, result.body


def single_detail(action: str, name: str, raw: str) -> str | None:
    try:
        check_query(BY_NAME[action], {name: [raw]})
    except Unprocessable as exc:
        return exc.detail
    return None


@pytest.mark.parametrize("raw", BAD_LIMITS)
async def test_a_bad_wallet_limit_is_the_items_422(raw: str) -> None:
    status, body = await answer("get_wallet", wallet_id="w-1", limit=raw)
    assert status == 422
    assert body["errors"] == [{"path": "$.params.limit"}]
    assert body["instance"] == "/v1/batch#/queries/3" and body["request_id"] == "req-1"
    # Where the single action's query rules refuse it, the item says what they say.
    expected = single_detail("get_wallet", "limit", raw)
    if expected is not None:
        assert body["detail"] == expected


@given(st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4))
async def test_any_digit_text_that_is_not_ascii_is_a_422_never_an_exception(raw: str) -> None:
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 100:
        return
    status, _ = await answer("get_wallet", wallet_id="w-1", limit=raw)
    assert status == 422


async def test_an_items_query_params_meet_the_actions_schemas() -> None:
    status, body = await answer("get_twin_profile", twin_id="ada", fields="x" * 2049)
    assert status == 422
    assert body["detail"] == single_detail("get_twin_profile", "fields", "x" * 2049)
    assert body["errors"] == [{"path": "$.params.fields"}]


async def test_an_unexpected_error_is_that_items_500_and_logged(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(item: batch.Item) -> dict[str, Any]:
        raise RuntimeError("a bug")

    takes, _ = batch.READERS["get_twin_profile"]
    monkeypatch.setitem(batch.READERS, "get_twin_profile", (takes, broken))
    with caplog.at_level(logging.ERROR):
        status, body = await answer("get_twin_profile", twin_id="ada")
    assert status == 500 and body["status"] == 500
    assert "a bug" not in body["detail"]
    assert body["request_id"] == "req-1"
    assert any("req-1" in r.getMessage() for r in caplog.records)


async def test_a_lost_replica_still_fails_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    async def gone(item: batch.Item) -> dict[str, Any]:
        raise psycopg.OperationalError("connection lost")

    takes, _ = batch.READERS["get_twin_profile"]
    monkeypatch.setitem(batch.READERS, "get_twin_profile", (takes, gone))
    with pytest.raises(psycopg.OperationalError):
        await answer("get_twin_profile", twin_id="ada")
