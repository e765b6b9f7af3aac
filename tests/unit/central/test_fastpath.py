"""Central's fast path for twin merges (``central.fastpath``), in-process: central's own app
(``central.app.create_app``) built twice over the writer's in-memory store (``FakeStore`` of
test_twin_writer), once with ``CENTRAL_FAST_WRITES`` on and once off. The same requests get the
same answers from both (status, body, headers but the trace's), the same writes stored, the same
key (and digest) under an Idempotency-Key; what the fast path does not answer reaches Litestar
as it came. Stored answers of keyed writes need Postgres: tests/integration/
test_central_fastpath.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from prometheus_client import REGISTRY
from pycrdt import Doc, Map

import central.app
from central import replay
from central.app import create_app
from central.memories import MemoryEmbedder
from central.settings import CentralSettings
from central.twins import Compactor, TwinWriter
from central.wiring import Parts
from mbwire import HopSigner, Principal
from mbwire.actions import BY_NAME
from mbwire.types import TwinWritten
from sealing import Keyring, KeyStore

from .test_twin_writer import FakeStore

SECRET = "a-central-hop-secret-0123456789"
ALICE, MALLORY = Principal(sub="alice", tier="pro"), Principal(sub="mallory", tier="pro")
PATCH = {"content-type": "application/merge-patch+json"}
OCTETS = {"content-type": "application/octet-stream"}


class RecordingWriter(TwinWriter):
    """The writer, noting the key each merge runs under (``replay.take()``: what a keyed write
    would store its answer under); a merge of twin ``boom`` fails unexpectedly."""

    def __init__(self, store: FakeStore, keyring: Keyring) -> None:
        super().__init__(store, keyring=keyring)  # type: ignore[arg-type]
        self.keys: list[replay._Key | None] = []

    async def apply_patch(self, principal: Principal, twin_id: str,
                          patch: dict[str, Any]) -> TwinWritten:
        self.keys.append(replay.take())
        if twin_id == "boom":
            raise RuntimeError("secret internals")
        return await super().apply_patch(principal, twin_id, patch)

    async def apply_update(self, principal: Principal, twin_id: str,
                           update: bytes) -> TwinWritten:
        self.keys.append(replay.take())
        return await super().apply_update(principal, twin_id, update)


@dataclass
class Central:
    http: httpx.AsyncClient
    writer: RecordingWriter
    store: FakeStore
    signer: HopSigner  # a hub's

    async def send(self, method: str, path: str, body: bytes, who: Principal | None,
                   headers: dict[str, str], *, rid: str = "r-1", query: str = "",
                   signed_path: str | None = None, signer: HopSigner | None = None,
                   ) -> httpx.Response:
        hop = (signer or self.signer).sign(method, signed_path or path, who, rid, query=query,
                                           body=body)
        return await self.http.request(
            method, path + (f"?{query}" if query else ""), content=body,
            headers={**hop, "x-request-id": rid, **headers})


def build(monkeypatch: pytest.MonkeyPatch, keys: Path, *, fast: bool,
          ) -> tuple[Litestar, RecordingWriter, FakeStore]:
    store = FakeStore()
    keyring = Keyring(KeyStore(keys))
    writer = RecordingWriter(store, keyring)

    def parts(settings: CentralSettings) -> Parts:
        return Parts(settings=settings, store=store, twin_committer=None,  # type: ignore[arg-type]
                     writer=writer, compactor=Compactor(writer), committer=None,  # type: ignore[arg-type]
                     sequencer=None, chainer=None, keyring=keyring,  # type: ignore[arg-type]
                     memories=MemoryEmbedder(store, keyring, lambda _: True),
                     popular=None)  # type: ignore[arg-type]

    monkeypatch.setattr(central.app, "build_parts", parts)
    settings = CentralSettings.from_env({
        "CENTRAL_DATABASE_URL": "postgresql://c/db", "CENTRAL_HOP_SECRET": SECRET,
        "CENTRAL_SHARD": "1", "CENTRAL_SHARDS": "2",
        "CENTRAL_FAST_WRITES": "true" if fast else "false"})
    assert settings.fast_writes is fast
    return create_app(settings), writer, store


@pytest.fixture
async def both(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               ) -> AsyncIterator[tuple[Central, Central]]:
    """Two centrals, fast and not, each holding twin ``t`` (alice's) and nothing else."""
    made = []
    for fast in (True, False):
        app, writer, store = build(monkeypatch, tmp_path / f"keys-{fast}", fast=fast)
        await writer.create(ALICE, "t", {"name": "Ada"})
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://central")
        made.append(Central(client, writer, store, HopSigner(SECRET)))
    yield made[0], made[1]
    for c in made:
        await c.http.aclose()


def served(action: str) -> float:
    return REGISTRY.get_sample_value("memorybank_fast_path_total", {"action": action}) or 0.0


def alike(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """Status, body and every header but the trace's (its ids are per request)."""
    return r.status_code, r.json(), {k: v for k, v in r.headers.items() if k != "traceresponse"}


def yjs_edit(edits: dict[str, Any]) -> bytes:
    doc = Doc()
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        for key, value in edits.items():
            profile[key] = value
    return doc.get_update()


# (name, method, path, body, principal, headers, status): the same request to both centrals.
REQUESTS: list[tuple[str, str, str, bytes, Principal | None, dict[str, str], int]] = [
    ("patch", "PATCH", "/v1/twins/t", b'{"city": "Amsterdam"}', ALICE, PATCH, 200),
    ("patch as json", "PATCH", "/v1/twins/t", b'{"n": 1}', ALICE,
     {"content-type": "application/json; charset=utf-8"}, 200),
    ("nothing new", "PATCH", "/v1/twins/t", b'{"n": 1}', ALICE, PATCH, 200),
    ("yjs update", "POST", "/v1/twins/t/updates", yjs_edit({"y": 1}), ALICE, OCTETS, 200),
    ("keyed patch", "PATCH", "/v1/twins/t", b'{"k": 1}', ALICE,
     {**PATCH, "idempotency-key": "key-1"}, 200),
    ("wrong media type", "PATCH", "/v1/twins/t", b'{"a": 1}', ALICE,
     {"content-type": "text/plain"}, 415),
    ("yjs as json", "POST", "/v1/twins/t/updates", b"{}", ALICE, PATCH, 415),
    ("too large", "PATCH", "/v1/twins/t", b'{"a": "' + b"x" * (1 << 20) + b'"}', ALICE,
     PATCH, 413),
    ("bad json", "PATCH", "/v1/twins/t", b'{"a": ', ALICE, PATCH, 400),
    ("not an object", "PATCH", "/v1/twins/t", b"[1, 2]", ALICE, PATCH, 422),
    ("nul in a key", "PATCH", "/v1/twins/t", b'{"a\\u0000b": 1}', ALICE, PATCH, 422),
    ("nul in a value", "PATCH", "/v1/twins/t", b'{"a": "x\\u0000"}', ALICE, PATCH, 422),
    ("too deep", "PATCH", "/v1/twins/t", b'{"a": ' + b'{"a": ' * 80 + b"1" + b"}" * 81,
     ALICE, PATCH, 422),
    ("garbage update", "POST", "/v1/twins/t/updates", b"\x00\xff\xfe", ALICE, OCTETS, 422),
    ("unknown twin", "PATCH", "/v1/twins/nobody", b'{"a": 1}', ALICE, PATCH, 404),
    ("stranger", "PATCH", "/v1/twins/t", b'{"a": 1}', MALLORY, PATCH, 403),
    ("anonymous hop", "PATCH", "/v1/twins/t", b'{"a": 1}', None, PATCH, 401),
    ("bad key", "PATCH", "/v1/twins/t", b'{"a": 1}', ALICE,
     {**PATCH, "idempotency-key": "two words"}, 400),
    ("bad token", "PATCH", "/v1/twins/t", b'{"a": 1}', ALICE,
     {**PATCH, "x-consistency-token": "nope"}, 400),
    ("unexpected", "PATCH", "/v1/twins/boom", b'{"a": 1}', ALICE, PATCH, 500),
]


async def test_both_paths_answer_and_store_alike(
    both: tuple[Central, Central], caplog: pytest.LogCaptureFixture,
) -> None:
    fast, slow = both
    before = {a: served(a) for a in ("patch_twin", "post_twin_update")}
    with caplog.at_level(logging.ERROR, "memorybank.errors"):
        for n, (name, method, path, body, who, headers, status) in enumerate(REQUESTS):
            answers = [await c.send(method, path, body, who, headers, rid=f"r-{n}")
                       for c in (fast, slow)]
            assert answers[0].status_code == status, (name, answers[0].text)
            assert alike(answers[0]) == alike(answers[1]), name
            if status >= 400:
                assert answers[0].headers["content-type"] == "application/problem+json"
                assert answers[0].json()["instance"] == path, name
    # Both logged the unexpected error the same way, with its traceback.
    logged = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert [r.getMessage() for r in logged] == ["unhandled error on PATCH /v1/twins/boom"] * 2
    assert all(r.exc_info for r in logged)
    # The same writes stored, under the same keys (the digest: the same request either way).
    assert fast.store.twins == slow.store.twins
    assert fast.writer.keys == slow.writer.keys
    keyed = [k for k in fast.writer.keys if k is not None]
    assert [(k.key, k.action) for k in keyed] == [("key-1", "patch_twin")]
    # Every request was the fast path's (its hop verified), none of them Litestar's.
    posts = sum(method == "POST" for _, method, *_ in REQUESTS)
    assert {a: served(a) - before[a] for a in before} == {
        "patch_twin": len(REQUESTS) - posts, "post_twin_update": posts}


async def test_what_the_fast_path_does_not_answer_reaches_litestar_as_it_came(
    both: tuple[Central, Central],
) -> None:
    """A query string, an unsigned or forged hop, a bad request id, a header twice, a twin id
    Litestar refuses, another method or path: Litestar answers, as it does without the fast
    path (the fast path's counter does not move)."""
    fast, slow = both
    other = HopSigner("another-secret-0123456789")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("query", {"query": "via=litestar"}),
        ("forged", {"signer": other}),
        ("signed for another path", {"signed_path": "/v1/twins/u"}),
        ("no principal header", {"drop": "x-mb-principal"}),
        ("no hop", {"drop": "x-mb-hop"}),
        ("insane request id", {"rid": "a b"}),
        ("header twice", {"twice": True}),
        ("bad twin id", {"path": "/v1/twins/b%C3%A9"}),
        ("trailing slash", {"path": "/v1/twins/t/"}),
        ("method", {"method": "PUT"}),
    ]
    before = served("patch_twin")
    for n, (name, case) in enumerate(cases):
        answers = []
        for c in (fast, slow):
            method, path = case.get("method", "PATCH"), case.get("path", "/v1/twins/t")
            body = b'{"q": %d}' % n
            hop = (case.get("signer") or c.signer).sign(
                method, case.get("signed_path", path), ALICE, case.get("rid", f"f-{n}"),
                query=case.get("query", ""), body=body)
            headers = [*hop.items(), ("x-request-id", case.get("rid", f"f-{n}")), *PATCH.items()]
            headers = [(k, v) for k, v in headers if k != case.get("drop")]
            if case.get("twice"):
                headers.append(("x-unrelated", "1"))
                headers.append(("x-unrelated", "2"))
            url = path + (f"?{case['query']}" if "query" in case else "")
            answers.append(await c.http.request(method, url, content=body, headers=headers))
        fast_r, slow_r = answers
        if name in ("insane request id",):  # a fresh id each time: compare the rest
            assert fast_r.status_code == slow_r.status_code == 401, name
            continue
        assert alike(fast_r)[:2] == alike(slow_r)[:2], (name, fast_r.text, slow_r.text)
        assert set(fast_r.headers) == set(slow_r.headers), name
    assert served("patch_twin") == before
    # Litestar wrote three (the query, the header given twice, the trailing slash), alike.
    assert fast.store.twins == slow.store.twins and fast.store.twins["t"].version == 4


async def test_a_hop_the_fast_path_accepted_is_spent_for_litestar_too(
    both: tuple[Central, Central],
) -> None:
    fast, _ = both
    body, rid = b'{"once": 1}', "r-once"
    hop = fast.signer.sign("PATCH", "/v1/twins/t", ALICE, rid, body=body)
    headers = {**hop, "x-request-id": rid, **PATCH}
    first = await fast.http.patch("/v1/twins/t", content=body, headers=headers)
    again = await fast.http.patch("/v1/twins/t", content=body, headers=headers)
    assert first.status_code == 200
    assert again.status_code == 401 and "replayed" in again.json()["detail"]
    assert fast.store.twins["t"].version == 2


def test_fast_writes_is_on_unless_turned_off() -> None:
    base = {"CENTRAL_DATABASE_URL": "postgresql://x/y", "CENTRAL_HOP_SECRET": "x" * 32}
    assert CentralSettings.from_env(base).fast_writes is True
    assert CentralSettings.from_env({**base, "CENTRAL_FAST_WRITES": "false"}).fast_writes is False
    assert BY_NAME["patch_twin"].path == "/v1/twins/{twin_id}"  # the paths the wrapper matches
    assert BY_NAME["post_twin_update"].path == "/v1/twins/{twin_id}/updates"
