"""Central's side of the audit trail (``central.audit``), without a database: what the intake
takes and refuses (in-process, over Litestar with the hop guard, a fake pool noting the
statements), the links a pass computes, and when the chainer signs a checkpoint (a fake clock
and blob store). The chain as ``memorybank audit verify`` checks it: tests/unit/ops/test_audit.py;
on a real Postgres: tests/integration/test_audit_chain.py."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from litestar.di import Provide

from blobs import BlobUnavailable
from central import audit
from central.audit import Chainer, chain, check_record, checkpoint_key
from central.settings import CentralSettings
from central.store import Store
from mbhttp import RequestContextMiddleware, exception_handlers
from mbhttp.guard import hop_guard
from mbwire import HopSigner, Principal
from mbwire.audit import GENESIS, AuditRecord, Checkpoint, checkpoint_holds, link, twin_ref

SECRET = "a-central-hop-secret-0123456789"
KEY = "the-audit-key"


def record(n: int = 0, **changes: Any) -> AuditRecord:
    base = AuditRecord(at=f"2026-01-02T03:04:{n % 60:02d}.{n:06d}Z", actor=f"agent-{n}",
                       action="get_twin_profile", twin_ref=twin_ref(b"k", f"twin-{n % 3}"),
                       request_id=f"req-{n}", outcome=200, region="ams")
    return msgspec.structs.replace(base, **changes)


# -- what a record may hold -------------------------------------------------------------------

def test_a_record_as_a_hub_makes_it_is_taken() -> None:
    assert check_record(record()) is None
    assert check_record(record(actor="ü" * 256, outcome=599, region="mow")) is None


@pytest.mark.parametrize(("field", "value"), [
    ("at", "2026-01-02T03:04:05Z"),            # no microseconds: would not round-trip
    ("at", "2026-01-02T03:04:05.123456+00:00"),
    ("at", "2026-13-02T03:04:05.123456Z"),
    ("at", "2026-01-02T23:59:60.000000Z"),     # a leap second Postgres would roll over
    ("actor", ""), ("actor", "a" * 257), ("actor", "bad\x00sub"),
    ("action", "Get Twin"), ("twin_ref", "twin-1"), ("twin_ref", "A" * 64),
    ("request_id", "has space"), ("outcome", 42), ("outcome", 600), ("region", ""),
])
def test_a_record_the_chain_could_not_store_is_named(field: str, value: Any) -> None:
    wrong = check_record(record(**{field: value}))
    assert wrong is not None and wrong[0] == field


# -- links --------------------------------------------------------------------------------------

def test_a_pass_links_each_record_to_the_one_before() -> None:
    records = [record(n) for n in range(4)]
    links = chain(GENESIS, 0, "g1", records)
    prev = GENESIS
    for seq, (r, got) in enumerate(zip(records, links, strict=True), start=1):
        prev = link(prev, seq, "g1", r)
        assert got == prev


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=12), st.integers(0, 12))
def test_passes_of_any_size_make_one_chain(ns: list[int], cut: int) -> None:
    records = [record(n) for n in ns]
    whole = chain(GENESIS, 0, "g1", records)
    cut = min(cut, len(records))
    first = chain(GENESIS, 0, "g1", records[:cut])
    rest = chain(first[-1] if first else GENESIS, cut, "g1", records[cut:])
    assert first + rest == whole


def test_the_cell_is_in_every_link() -> None:
    assert chain(GENESIS, 0, "g1", [record()]) != chain(GENESIS, 0, "ru1", [record()])


# -- checkpoints ------------------------------------------------------------------------------

class Blobs:
    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}
        self.down = False

    async def put(self, key: str, data: bytes, *, size: int, sha256: str) -> None:
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha256
        if self.down:
            raise BlobUnavailable("down")
        self.kept[key] = data


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def chainer(blobs: Blobs | None, clock: Clock, key: str = KEY) -> Chainer:
    return Chainer(None, cell="g1", key=key, blobs=blobs,  # type: ignore[arg-type]
                   checkpoint_every=256, clock=clock)


async def test_the_head_is_signed_at_start_at_each_multiple_and_every_10_s() -> None:
    blobs, clock = Blobs(), Clock()
    c = chainer(blobs, clock)
    await c.checkpoint_if_due(0, GENESIS)           # nothing chained yet: nothing to sign
    assert blobs.kept == {}
    head = link(GENESIS, 5, "g1", record())
    await c.checkpoint_if_due(5, head)              # the head a start finds
    assert list(blobs.kept) == [checkpoint_key(5)]
    assert checkpoint_key(5) == "audit/checkpoints/00000000000000000005.json"
    cp = msgspec.json.decode(blobs.kept[checkpoint_key(5)], type=Checkpoint)
    assert (cp.cell, cp.seq, cp.hash) == ("g1", 5, head.hex())
    assert checkpoint_holds(KEY.encode(), cp)
    await c.checkpoint_if_due(5, head)
    await c.checkpoint_if_due(200, head)            # within 10 s, no multiple passed
    assert len(blobs.kept) == 1
    await c.checkpoint_if_due(300, head)            # passed 256
    assert checkpoint_key(300) in blobs.kept
    clock.now += 9.9
    await c.checkpoint_if_due(301, head)
    assert checkpoint_key(301) not in blobs.kept
    clock.now += 0.1
    await c.checkpoint_if_due(301, head)            # 10 s since, records came
    assert checkpoint_key(301) in blobs.kept
    clock.now += 60
    await c.checkpoint_if_due(301, head)            # quiet: nothing new to sign
    assert len(blobs.kept) == 3


async def test_a_checkpoint_the_store_refused_is_written_when_it_is_back() -> None:
    blobs, clock = Blobs(), Clock()
    c = chainer(blobs, clock)
    blobs.down = True
    await c.checkpoint_if_due(7, GENESIS)
    assert blobs.kept == {}
    blobs.down = False
    await c.checkpoint_if_due(7, GENESIS)
    assert list(blobs.kept) == [checkpoint_key(7)]


async def test_without_a_key_or_a_store_no_checkpoint_is_signed() -> None:
    blobs = Blobs()
    await chainer(blobs, Clock(), key="").checkpoint_if_due(300, GENESIS)
    await chainer(None, Clock()).checkpoint_if_due(300, GENESIS)
    assert blobs.kept == {}


# -- the intake -------------------------------------------------------------------------------

class Cursor:
    async def fetchone(self) -> None:
        return None  # an empty chain: its head is GENESIS at seq 0


class Conn:
    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    async def execute(self, sql: str, params: Any = None) -> Cursor:
        self.statements.append((sql, params))
        return Cursor()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


class Pool:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    @asynccontextmanager
    async def connection(self, **_: float) -> AsyncIterator[Conn]:
        yield self.conn


class FakeStore(Store):
    """Central's store with a pool that notes statements (Litestar checks a dependency's type)."""

    def __init__(self) -> None:
        self.conn = Conn()
        self.pool = Pool(self.conn)  # type: ignore[assignment]
        self.pool_timeout_s = 1.0


@pytest.fixture
async def central() -> AsyncIterator[tuple[httpx.AsyncClient, FakeStore]]:
    store = FakeStore()
    settings = CentralSettings(database_url="postgresql://unused", hop_secret=SECRET, cell="g1")
    app = Litestar(route_handlers=[audit.intake],
                   dependencies={"store": Provide(lambda: store, sync_to_thread=False),
                                 "settings": Provide(lambda: settings, sync_to_thread=False)},
                   guards=[hop_guard(HopSigner(SECRET), open_paths=frozenset())],
                   middleware=[RequestContextMiddleware(served_by="central")],
                   exception_handlers=exception_handlers(), openapi_config=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://central") as client:
        yield client, store


async def post(client: httpx.AsyncClient, body: bytes, who: Principal | None = None,
               secret: str = SECRET) -> httpx.Response:
    hop = HopSigner(secret).sign("POST", "/internal/audit", who, "audit-flush", body=body)
    return await client.post("/internal/audit", content=body, headers={
        **hop, "x-request-id": "audit-flush", "content-type": "application/json"})


async def test_a_batch_is_chained_at_once_under_the_chain_lock(
        central: tuple[httpx.AsyncClient, FakeStore]) -> None:
    client, store = central
    records = [record(n) for n in range(3)]
    answer = await post(client, msgspec.json.encode({"records": records}))
    assert answer.status_code == 204, answer.text
    (lock, _), (head, _), (insert, params) = store.conn.statements
    assert "pg_advisory_xact_lock" in lock and "from audit_log" in head
    assert "insert into audit_log" in insert
    seqs, _, actors, *_, links = params
    assert seqs == [1, 2, 3] and actors == [r.actor for r in records]
    assert links == chain(GENESIS, 0, "g1", records)  # each record written once, linked


@pytest.mark.parametrize(("body", "status", "says"), [
    (b'{"records": [{"at": "yesterday"}]}', 422, "$.records[0]"),
    (b'{"records": "all of them"}', 422, "$.records"),
    (b"not json", 400, "not valid JSON"),
])
async def test_a_bad_batch_keeps_nothing(central: tuple[httpx.AsyncClient, FakeStore], body: bytes,
                                         status: int, says: str) -> None:
    client, store = central
    answer = await post(client, body)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert says in answer.text
    assert store.conn.statements == []


async def test_one_bad_record_refuses_the_batch_and_names_it(
        central: tuple[httpx.AsyncClient, FakeStore]) -> None:
    client, store = central
    body = msgspec.json.encode({"records": [record(0), record(1, outcome=1000)]})
    answer = await post(client, body)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"path": "$.records[1].outcome"}]
    assert store.conn.statements == []


async def test_only_a_hubs_own_signed_call_is_taken(
        central: tuple[httpx.AsyncClient, FakeStore]) -> None:
    client, store = central
    body = msgspec.json.encode({"records": [record()]})
    assert (await post(client, body, Principal(sub="alice", tier="pro"))).status_code == 403
    assert (await post(client, body, secret="not-the-central-secret")).status_code == 401
    assert store.conn.statements == []
