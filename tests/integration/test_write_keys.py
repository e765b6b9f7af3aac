"""Keyed twin writes on the live stack: a retry under the same Idempotency-Key answers what the
first attempt did (its status, body and token) and writes nothing, as when the first answer was
lost to a timeout; the same key with another request is a 409; concurrent duplicates apply once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest

from central.replay import prune
from central.store import Store

from .conftest import LiveStack
from .test_twins import create, primary_scalar

pytestmark = pytest.mark.integration

PATCH = "application/merge-patch+json"


def keyed(live: LiveStack, sub: str, key: str, **extra: str) -> dict[str, str]:
    return {**live.auth(sub), "Idempotency-Key": key, **extra}


async def test_a_retried_create_answers_the_first_create(live: LiveStack,
                                                         http: httpx.AsyncClient):
    sub, key = f"ik-create-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    twin_id = uuid.uuid4().hex
    body = {"twin_id": twin_id, "profile": {"name": "Ada"}}
    first = await http.post(f"{live.topology.edges['ams']}/v1/twins",
                            headers=keyed(live, sub, key), json=body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # The retry through another region's edge (its first answer was lost): before the stored
    # answers this was a 409 "twin already exists".
    again = await http.post(f"{live.topology.edges['iad']}/v1/twins",
                            headers=keyed(live, sub, key), json=body)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["x-consistency-token"] == first.headers["x-consistency-token"]
    assert again.headers["idempotent-replayed"] == "true"

    # Without a twin_id the retry answers the first attempt's twin, and makes no second one.
    key2 = uuid.uuid4().hex
    made = [await http.post(f"{live.topology.edges['sin']}/v1/twins",
                            headers=keyed(live, sub, key2), json={"profile": {}})
            for _ in range(2)]
    assert [r.status_code for r in made] == [201, 201]
    assert made[0].json() == made[1].json()
    assert primary_scalar(live, "select count(*) from twins where owner_sub = %s", sub) == 2


async def test_a_retried_patch_never_overwrites_a_later_write(live: LiveStack,
                                                              http: httpx.AsyncClient):
    sub = f"ik-patch-{uuid.uuid4().hex[:8]}"
    twin_id = await create(live, http, sub, {"city": "London"})
    url = f"{live.topology.edges['ams']}/v1/twins/{twin_id}"
    key = uuid.uuid4().hex
    first = await http.patch(url, content=b'{"city": "Paris"}',
                             headers=keyed(live, sub, key, **{"Content-Type": PATCH}))
    assert first.status_code == 200, first.text
    other = await http.patch(url, content=b'{"city": "Rome"}',
                             headers={**live.auth(sub), "Content-Type": PATCH})
    assert other.status_code == 200 and other.json()["version"] == first.json()["version"] + 1
    retry = await http.patch(url, content=b'{"city": "Paris"}',
                             headers=keyed(live, sub, key, **{"Content-Type": PATCH}))
    assert retry.status_code == 200 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    read = await http.get(url, headers={**live.auth(sub),
                                        "X-Consistency-Token": other.json()["consistency_token"]})
    assert read.json()["profile"]["city"] == "Rome"
    assert read.json()["version"] == other.json()["version"]


async def test_a_retried_revoke_answers_its_first_answer(live: LiveStack, http: httpx.AsyncClient):
    sub = f"ik-revoke-{uuid.uuid4().hex[:8]}"
    twin_id = await create(live, http, sub)
    grants = f"{live.topology.edges['ams']}/v1/twins/{twin_id}/grants"
    r = await http.post(grants, headers=keyed(live, sub, uuid.uuid4().hex),
                        json={"sub": "bob", "access": "read"})
    assert r.status_code == 200, r.text
    key = uuid.uuid4().hex
    first = await http.delete(f"{grants}/bob", headers=keyed(live, sub, key))
    assert first.status_code == 200, first.text
    again = await http.delete(f"{grants}/bob", headers=keyed(live, sub, key))
    assert again.status_code == 200, again.text  # was 404: "no such grant"
    assert again.json() == first.json()
    # Without the key, a revoke of a grant that is gone is still a 404.
    assert (await http.delete(f"{grants}/bob", headers=live.auth(sub))).status_code == 404


async def test_the_same_key_for_another_request_is_a_409(live: LiveStack, http: httpx.AsyncClient):
    sub, key = f"ik-reuse-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    twin_id = await create(live, http, sub)
    url = f"{live.topology.edges['ams']}/v1/twins/{twin_id}"
    r = await http.patch(url, content=b'{"a": 1}',
                         headers=keyed(live, sub, key, **{"Content-Type": PATCH}))
    assert r.status_code == 200, r.text
    for method, body in (("PATCH", b'{"a": 2}'), ("POST", b'{"sub": "x", "access": "read"}')):
        path = url if method == "PATCH" else f"{url}/grants"
        ctype = PATCH if method == "PATCH" else "application/json"
        r = await http.request(method, path, content=body,
                               headers=keyed(live, sub, key, **{"Content-Type": ctype}))
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"].endswith("/idempotency-key-reused") and key in problem["detail"]
    # Nothing of the refused requests was written.
    assert primary_scalar(live, "select version from twins where twin_id = %s", twin_id) == 2
    # A key is the caller's own: another caller may use the same one.
    other = await http.post(f"{live.topology.edges['ams']}/v1/twins",
                            headers=keyed(live, f"{sub}-b", key), json={})
    assert other.status_code == 201


async def test_concurrent_duplicates_apply_once(live: LiveStack, http: httpx.AsyncClient):
    sub, key = f"ik-dup-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    edges = list(live.topology.edges.values())
    answers = await asyncio.gather(*(
        http.post(f"{edges[i % len(edges)]}/v1/twins", headers=keyed(live, sub, key),
                  json={"profile": {"n": 1}})
        for i in range(8)))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["twin_id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 7
    assert primary_scalar(live, "select count(*) from twins where owner_sub = %s", sub) == 1



async def test_other_central_writes_replay_their_first_answer(live: LiveStack,
                                                              http: httpx.AsyncClient):
    """A trajectory append, an artifact announce and a knowledge delete retried after they
    committed: before, a 409 naming the caller's own step, a second pending artifact, a 404."""
    sub = f"ik-more-{uuid.uuid4().hex[:8]}"
    twin_id = await create(live, http, sub)
    edge = live.topology.edges["ams"]

    async def twice(method: str, path: str, **kw: object) -> list[httpx.Response]:
        key = uuid.uuid4().hex
        out = [await http.request(method, f"{edge}{path}", headers=keyed(live, sub, key),
                                  **kw) for _ in range(2)]  # type: ignore[arg-type]
        assert out[0].status_code in (200, 201), out[0].text
        assert out[1].status_code == out[0].status_code, out[1].text
        assert out[1].json() == out[0].json()
        assert out[1].headers["idempotent-replayed"] == "true"
        return out

    await twice("POST", f"/v1/twins/{twin_id}/trajectory",
                json={"action": "look", "expected_version": 0})
    assert primary_scalar(live, "select count(*) from trajectory_steps where twin_id = %s",
                          twin_id) == 1

    await twice("POST", "/v1/artifacts", json={
        "twin_id": twin_id, "content_type": "text/plain", "size": 3, "sha256": "a" * 64})
    assert primary_scalar(live, "select count(*) from artifacts where twin_id = %s", twin_id) == 1

    doc_id = f"ik-{uuid.uuid4().hex[:12]}"
    r = await http.post(f"{edge}/v1/knowledge", headers=keyed(live, sub, uuid.uuid4().hex),
                        json={"id": doc_id, "title": "Keys", "body": "A retry answers once."})
    assert r.status_code == 201, r.text
    await twice("DELETE", f"/v1/knowledge/{doc_id}")


async def test_keys_past_their_retention_are_forgotten(live: LiveStack, http: httpx.AsyncClient):
    sub, key = f"ik-old-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"twin_id": uuid.uuid4().hex, "profile": {}}
    url = f"{live.topology.edges['ams']}/v1/twins"
    assert (await http.post(url, headers=keyed(live, sub, key), json=body)).status_code == 201
    with psycopg.connect(live.topology.postgres.primary, autocommit=True) as conn:
        conn.execute("update write_keys set created_at = now() - interval '25 hours'"
                     " where principal = %s", (sub,))
    store = Store(live.topology.postgres.primary, min_size=1, max_size=1)
    await store.open()
    try:
        async with store.write() as tx:
            assert await prune(tx, 24) >= 1
    finally:
        await store.close()
    # The key is gone: the retry is a new create, refused because the twin exists.
    assert (await http.post(url, headers=keyed(live, sub, key), json=body)).status_code == 409


async def test_a_keyed_write_on_the_resident_path_stores_its_answer(live: LiveStack,
                                                                   http: httpx.AsyncClient):
    """The hot path (the twin resident at central) stores in one statement: the answered key
    goes in that statement, and a retry there (the key taken) is answered, not applied."""
    sub = f"ik-hot-{uuid.uuid4().hex[:8]}"
    twin_id = await create(live, http, sub)
    url = f"{live.topology.edges['ams']}/v1/twins/{twin_id}"
    warm = await http.patch(url, content=b'{"n": 0}', headers={**live.auth(sub),
                                                               "Content-Type": PATCH})
    assert warm.status_code == 200  # the twin is now resident at central
    key = uuid.uuid4().hex
    first = await http.patch(url, content=b'{"n": 1}',
                             headers=keyed(live, sub, key, **{"Content-Type": PATCH}))
    assert first.status_code == 200 and first.json()["version"] == 3
    with psycopg.connect(live.topology.postgres.primary) as conn:
        row = conn.execute("select status, body, token from write_keys where principal = %s"
                           " and idempotency_key = %s", (sub, key)).fetchone()
    assert row is not None and row[0] == 200 and row[1]["version"] == 3 and row[2]
    other = await http.patch(url, content=b'{"n": 2}', headers={**live.auth(sub),
                                                                "Content-Type": PATCH})
    assert other.json()["version"] == 4
    retry = await http.patch(url, content=b'{"n": 1}',
                             headers=keyed(live, sub, key, **{"Content-Type": PATCH}))
    assert retry.json() == first.json()
    assert retry.headers["x-consistency-token"] == first.headers["x-consistency-token"]
    assert primary_scalar(live, "select version from twins where twin_id = %s", twin_id) == 4
