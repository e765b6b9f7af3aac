"""The contract as a client sees it through an edge: the documented actions and only those, the
document and docs page at the edge, grants listed and revoked, one body limit with a clear
problem, validation errors as 422 naming the failing path."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from mbwire import openapi

from .conftest import LiveStack
from .test_twins import create, read

pytestmark = pytest.mark.integration


async def test_edge_serves_the_document_and_an_offline_docs_page(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    edge = live.topology.edges["ams"]
    doc = await http.get(f"{edge}/openapi.json")
    assert doc.status_code == 200 and msgspec.json.decode(doc.content) == openapi.document()
    page = await http.get(f"{edge}/docs")
    assert page.status_code == 200 and b"<script" not in page.content


async def test_grants_are_listed_and_revoked_and_revocation_takes_effect(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    edge = live.topology.edges["ams"]
    owner = live.auth("gr-owner", tier="pro")
    twin = await create(live, http, "gr-owner", {"v": 1})
    r = await http.post(f"{edge}/v1/twins/{twin}/grants", headers=owner,
                        json={"sub": "gr-bob", "access": "read"})
    assert r.status_code == 200, r.text
    token = r.headers["x-consistency-token"]
    r = await http.get(f"{edge}/v1/twins/{twin}/grants",
                       headers={**owner, "X-Consistency-Token": token})
    assert r.status_code == 200, r.text
    assert r.json() == {"twin_id": twin, "owner": "gr-owner",
                        "grants": [{"sub": "gr-bob", "access": "read"}]}
    bob = live.auth("gr-bob", tier="pro")
    # Only the owner manages grants; a grantee may read the twin but not its grants.
    assert (await http.get(f"{edge}/v1/twins/{twin}/grants", headers=bob)).status_code == 403
    assert (await http.delete(f"{edge}/v1/twins/{twin}/grants/gr-bob",
                              headers=bob)).status_code == 403
    r = await read(live, http, "gr-bob", twin, "iad", token)
    assert r.status_code == 200, r.text  # the read grant lets bob read the twin itself
    r = await http.delete(f"{edge}/v1/twins/{twin}/grants/gr-bob", headers=owner)
    assert r.status_code == 200, r.text
    revoked = r.headers["x-consistency-token"]
    assert r.json()["sub"] == "gr-bob"
    r = await http.get(f"{edge}/v1/twins/{twin}",
                       headers={**bob, "X-Consistency-Token": revoked})
    assert r.status_code == 403, r.text
    r = await http.delete(f"{edge}/v1/twins/{twin}/grants/gr-bob", headers=owner)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_unknown_paths_and_methods_answered_at_the_edge(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    edge, auth = live.topology.edges["ams"], live.auth("paths")
    r = await http.put(f"{edge}/v1/twins/x", headers=auth, content=b"{}")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, PATCH"
    assert r.headers["content-type"] == "application/problem+json"
    assert "hub=" not in r.headers["x-served-by"]
    r = await http.get(f"{edge}/v1/no-such-collection", headers=auth)  # /v1/agents exists now
    assert r.status_code == 404 and "hub=" not in r.headers["x-served-by"]


async def test_one_body_limit_with_a_clear_problem(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    edge, auth = live.topology.edges["ams"], live.auth("big")
    r = await http.post(f"{edge}/v1/twins", headers={**auth, "Content-Type": "application/json"},
                        content=b"{" + b" " * (1 << 20) + b"}")
    assert r.status_code == 413
    problem = r.json()
    assert problem["limit"] == 1 << 20 and "POST /v1/twins" in problem["detail"]


async def test_validation_errors_are_422_naming_the_path(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    edge, auth = live.topology.edges["ams"], live.auth("shape")
    r = await http.post(f"{edge}/v1/twins", headers=auth, json={"twin_id": 7})
    assert r.status_code == 422 and "$.twin_id" in r.json()["detail"]
    twin = await create(live, http, "shape")
    r = await http.post(f"{edge}/v1/twins/{twin}/grants", headers=auth,
                        json={"sub": "x", "access": "own"})
    assert r.status_code == 422 and "$.access" in r.json()["detail"]


async def test_the_demo_runs_every_step_on_the_stack(live: LiveStack) -> None:
    from examples import demo

    assert await demo._run(live.topology, live.secrets, {}) == 0
