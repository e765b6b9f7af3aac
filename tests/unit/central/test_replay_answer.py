"""``central.replay.answer_keyed``: a keyed write's answer without Litestar's request (central's
fast path and its Litestar handlers both run it). The stored answer itself (claim, record,
replay) needs Postgres: tests/integration/test_write_keys.py and test_central_fastpath.py."""

from __future__ import annotations

import msgspec
import pytest

from central import replay
from mbwire.actions import BY_NAME
from mbwire.types import TwinWritten

PATCH = BY_NAME["patch_twin"]
WRITTEN = TwinWritten(twin_id="t", version=3, consistency_token="L0000000000000010")


async def test_an_unkeyed_write_answers_what_it_wrote_with_its_token() -> None:
    seen = []

    async def run() -> TwinWritten:
        seen.append(replay.take())
        return WRITTEN

    done = await replay.answer_keyed(PATCH, run, "alice", key=None, method="PATCH",
                                     path="/v1/twins/t", query="", body=b"{}")
    assert seen == [None]  # not keyed: the writer stores no answer
    assert done == replay.Answer(200, msgspec.json.encode(WRITTEN),
                                 {"x-consistency-token": "L0000000000000010"})
    assert msgspec.json.decode(done.body) == {"twin_id": "t", "version": 3,
                                              "consistency_token": "L0000000000000010"}


async def test_a_keyed_write_runs_under_its_key_bound_to_the_request() -> None:
    seen = []

    async def run() -> TwinWritten:
        seen.append(replay.take())
        return WRITTEN

    done = await replay.answer_keyed(PATCH, run, "alice", key="k-1", method="PATCH",
                                     path="/v1/twins/t", query="", body=b'{"a": 1}')
    [key] = seen
    assert key is not None
    assert (key.principal, key.key, key.action, key.status) == ("alice", "k-1", "patch_twin", 200)
    assert key.digest == replay.digest("patch_twin", "PATCH", "/v1/twins/t", "", b'{"a": 1}')
    assert done.headers == {"x-consistency-token": "L0000000000000010"}
    assert replay.take() is None  # the key was the request's only


async def test_a_retry_answers_the_stored_answer_marked_replayed() -> None:
    stored = {"twin_id": "t", "version": 2, "consistency_token": "L0000000000000020"}

    async def run() -> TwinWritten:
        raise replay._Replayed(200, stored, "L0000000000000020")

    done = await replay.answer_keyed(PATCH, run, "alice", key="k-1", method="PATCH",
                                     path="/v1/twins/t", query="", body=b"{}")
    assert done == replay.Answer(200, msgspec.json.encode(stored), {
        "x-consistency-token": "L0000000000000020", "idempotent-replayed": "true"})
    assert replay.take() is None


async def test_a_refused_write_leaves_no_key_pending() -> None:
    async def run() -> TwinWritten:
        raise replay.KeyReused("used for another request")

    with pytest.raises(replay.KeyReused):
        await replay.answer_keyed(PATCH, run, "alice", key="k-1", method="PATCH",
                                  path="/v1/twins/t", query="", body=b"{}")
    assert replay.take() is None


def test_the_digest_binds_every_part_of_the_request() -> None:
    parts = ("patch_twin", "PATCH", "/v1/twins/t", "", b"{}")
    base = replay.digest(*parts)
    assert base == replay.digest(*parts) and len(base) == 32
    changed = [("post_twin_update", "PATCH", "/v1/twins/t", "", b"{}"),
               ("patch_twin", "POST", "/v1/twins/t", "", b"{}"),
               ("patch_twin", "PATCH", "/v1/twins/u", "", b"{}"),
               ("patch_twin", "PATCH", "/v1/twins/t", "via=litestar", b"{}"),
               ("patch_twin", "PATCH", "/v1/twins/t", "", b"{ }")]
    assert len({base, *(replay.digest(*c) for c in changed)}) == 1 + len(changed)
