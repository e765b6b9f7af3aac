"""Hostile input on the full local stack: NULs where Postgres stores text, JSON nested
10,000 deep, and paths that try to forge log lines. Each is a clean problem with nothing
written, never a 500 (the session fixture also fails the run on any traceback in a log)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pycrdt import Doc, Map

from central.store import Store
from mbwire import HopSigner, Principal, Unprocessable
from sealing import Keyring, KeyStore

from .conftest import LiveStack

pytestmark = pytest.mark.integration

PATCH = {"Content-Type": "application/merge-patch+json"}


def deep_object(depth: int) -> bytes:
    """``{"a":{"a":...{"a":1}...}}``: ``depth`` objects."""
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def primary_count(live: LiveStack, sql: str, *args: Any) -> int:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        row = conn.execute(sql, args).fetchone()
        return int(row[0]) if row else 0


def assert_problem(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    for word in words:
        assert word in r.json()["detail"], r.json()


async def _twin(live: LiveStack, http: httpx.AsyncClient, sub: str) -> tuple[str, str]:
    edge = live.topology.edges["ams"]
    r = await http.post(f"{edge}/v1/twins", headers=live.auth(sub),
                        json={"profile": {"name": "Ada"}})
    assert r.status_code == 201, r.text
    return edge, r.json()["twin_id"]


@pytest.mark.parametrize("profile", [
    '{"na\\u0000me": "Ada"}', '{"name": "A\\u0000da"}', '{"n": {"deep": ["x\\u0000"]}}',
])
async def test_a_nul_in_a_new_profile_is_a_422_and_nothing_is_written(
    live: LiveStack, http: httpx.AsyncClient, profile: str,
) -> None:
    twin_id = f"nul-{uuid.uuid4().hex[:12]}"
    r = await http.post(
        f"{live.topology.edges['ams']}/v1/twins", headers={
            **live.auth("hostile"), "Content-Type": "application/json"},
        content=f'{{"twin_id": "{twin_id}", "profile": {profile}}}')
    assert_problem(r, 422, "U+0000")
    assert primary_count(live, "select count(*) from twins where twin_id = %s", twin_id) == 0


async def test_a_nul_in_a_merge_patch_or_yjs_update_is_a_422_and_nothing_changes(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    edge, twin_id = await _twin(live, http, "hostile")
    url = f"{edge}/v1/twins/{twin_id}"
    for patch in (b'{"c\\u0000": 1}', b'{"c": "\\u0000"}', b'{"c": {"d": ["\\u0000"]}}'):
        r = await http.patch(url, headers={**live.auth("hostile"), **PATCH}, content=patch)
        assert_problem(r, 422, "U+0000")
    doc: Doc[Any] = Doc()
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        profile["k\x00"] = "v\x00"
    r = await http.post(f"{url}/updates", content=doc.get_update(), headers={
        **live.auth("hostile"), "Content-Type": "application/octet-stream"})
    assert_problem(r, 422, "U+0000")
    version = "select version from twins where twin_id = %s"
    assert primary_count(live, version, twin_id) == 1


@pytest.mark.parametrize("sub", ["bad\x00sub", "bad\nsub"])
async def test_a_grant_to_a_sub_with_control_characters_is_a_422(
    live: LiveStack, http: httpx.AsyncClient, sub: str,
) -> None:
    edge, twin_id = await _twin(live, http, "hostile")
    r = await http.post(f"{edge}/v1/twins/{twin_id}/grants", headers=live.auth("hostile"),
                        json={"sub": sub, "access": "read"})
    assert_problem(r, 422, "$.sub")
    grants = "select count(*) from twin_grants where twin_id = %s"
    assert primary_count(live, grants, twin_id) == 0


async def test_a_jwt_sub_with_a_nul_is_a_401_at_the_edge(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins",
                        headers=live.auth("evil\x00sub"), json={"profile": {}})
    assert_problem(r, 401, "control characters")


async def test_central_refuses_a_hop_whose_principal_has_a_nul(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """Defence in depth: a hub that forwarded such a principal gets a 401, not a 500."""
    path = "/v1/twins"
    evil = Principal(sub="evil\x00", tier="internal")  # a Struct is not validated when built
    headers = {**HopSigner(live.secrets.central_hop_secret).sign("POST", path, evil, "t-nul",
                                                                  body=b"{}"),
               "x-request-id": "t-nul", "Content-Type": "application/json"}
    r = await http.post(f"{live.topology.central}{path}", headers=headers, content=b"{}")
    assert_problem(r, 401, "malformed principal")


@pytest.mark.parametrize("depth", [100, 10_000])
async def test_json_nested_deep_is_a_422_naming_the_limit(
    live: LiveStack, http: httpx.AsyncClient, depth: int,
) -> None:
    edge, twin_id = await _twin(live, http, "deep")
    created = await http.post(f"{edge}/v1/twins", headers={
        **live.auth("deep"), "Content-Type": "application/json"},
        content=b'{"profile": ' + deep_object(depth) + b"}")
    assert_problem(created, 422, "64 levels")
    patched = await http.patch(f"{edge}/v1/twins/{twin_id}", content=deep_object(depth),
                               headers={**live.auth("deep"), **PATCH})
    assert_problem(patched, 422, "64 levels")


async def test_the_store_turns_what_postgres_refuses_into_a_422(
    live: LiveStack, tmp_path: Path,
) -> None:
    """The backstop behind the checks: a NUL that reaches the store in a text column is a 422,
    rolled back (a profile's NULs are sealed bytes now: nothing for Postgres to refuse)."""
    store = Store(live.topology.postgres.primary, min_size=1, max_size=1)
    await store.open()
    twin_id = f"backstop-{uuid.uuid4().hex[:8]}"
    key = await Keyring(KeyStore(tmp_path / "keys")).create(twin_id)
    try:
        with pytest.raises(Unprocessable, match="cannot store"):
            async with store.write() as tx:
                await tx.insert_twin(key, twin_id, "owner\x00", b"\x00\x00", {})
        with pytest.raises(Unprocessable, match="cannot store"):
            async with store.write() as tx:
                await tx.insert_twin(key, twin_id + "\x00", "owner", b"\x00\x00", {"k": "\x00"})
    finally:
        await store.close()
    assert primary_count(live, "select count(*) from twins where twin_id = %s", twin_id) == 0


async def test_a_path_cannot_forge_a_line_or_write_a_nul_into_a_hubs_log(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    marker = uuid.uuid4().hex
    forged = f"/v1/twins/{marker}%0a2026-01-01 00:00:00,000 memorybank.access INFO forged%00"
    r = await http.get(f"{live.topology.hubs['ams']}{forged}", headers={"x-request-id": marker})
    assert r.status_code == 401  # unsigned; logged all the same
    path = live.stack.data_dir / "logs" / "hub-ams.log"
    deadline = time.monotonic() + 10  # the line is written once the response has gone out
    while marker not in (log := path.read_bytes()).decode(errors="replace"):
        assert time.monotonic() < deadline, "the hub never logged the request"
        await asyncio.sleep(0.05)
    assert b"\x00" not in log
    lines = [line for line in log.decode().splitlines() if marker in line]
    assert len(lines) == 1, lines
    assert f"/v1/twins/{marker}\\n2026-01-01" in lines[0]
    assert lines[0].split("forged", 1)[1].startswith("\\x00")
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in log.decode().splitlines())
