"""A revoked grant stops working at every PoP: the edge never answers a grantee from its cache
(the hub marks every answer that relied on a grant ``Cache-Control: private, no-store``), so a
grantee's read after the revocation always reaches a hub, which refuses it as soon as its region
shows the revocation, and at once for a read carrying the revocation's token."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mbwire import ConsistencyToken

from .conftest import REGIONS, LiveStack
from .test_knowledge_search import ids, ingest, search
from .test_twins import create

pytestmark = pytest.mark.integration


async def read(live: LiveStack, http: httpx.AsyncClient, sub: str, twin_id: str, region: str,
               token: str | None = None) -> httpx.Response:
    """As a plain (not superuser) caller: enterprise, so the retries below stay in its limit."""
    headers = live.auth(sub, tier="enterprise")
    if token:
        headers["X-Consistency-Token"] = token
    return await http.get(f"{live.topology.edges[region]}/v1/twins/{twin_id}", headers=headers)


async def test_a_revoked_reader_is_never_served_from_an_edge_cache(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    owner, reader = (f"rv-{x}-{uuid.uuid4().hex[:6]}" for x in ("owner", "reader"))
    twin = await create(live, http, owner, {"secret": 1})
    edge = live.topology.edges["ams"]
    r = await http.post(f"{edge}/v1/twins/{twin}/grants", headers=live.auth(owner),
                        json={"sub": reader, "access": "read"})
    assert r.status_code == 200, r.text
    granted = r.headers["x-consistency-token"]
    for region in REGIONS:  # the grantee reads at every PoP, again and again
        for _ in range(3):
            r = await read(live, http, reader, twin, region, granted)
            assert r.status_code == 200, r.text
            assert r.headers["x-cache"] == "MISS"
            assert "no-store" in r.headers["cache-control"]
    # The owner's answers do not rely on a grant: cacheable (the edge may answer them).
    r = await read(live, http, owner, twin, "ams", granted)
    assert r.status_code == 200 and "no-store" not in r.headers.get("cache-control", "")

    r = await http.delete(f"{edge}/v1/twins/{twin}/grants/{reader}", headers=live.auth(owner))
    assert r.status_code == 200, r.text
    revoked = ConsistencyToken.parse(r.headers["x-consistency-token"])
    for region in REGIONS:
        # No token: a hub answers (never the PoP's cache). It is a 403 once its region shows
        # the revocation; before that only an answer from a position older than it is a 200.
        for _ in range(200):
            r = await read(live, http, reader, twin, region)
            assert r.headers["x-cache"] == "MISS" and "hub=" in r.headers["x-served-by"]
            if r.status_code == 403:
                break
            assert r.status_code == 200, r.text
            assert ConsistencyToken.parse(r.headers["x-consistency-token"]) < revoked
        assert r.status_code == 403, r.text
        # With the revocation's token: refused at once, at every hub.
        r = await read(live, http, reader, twin, region, str(revoked))
        assert r.status_code == 403, r.text


async def test_a_search_answer_showing_a_granted_artifact_is_never_cached(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    owner, reader = (f"rv-{x}-{uuid.uuid4().hex[:6]}" for x in ("owner", "reader"))
    twin = await create(live, http, owner)
    word = f"lantern{uuid.uuid4().hex[:8]}"
    art, written = await ingest(live, "notes", f"The {word} notes.", twin_id=twin, owner=owner)
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins/{twin}/grants",
                        headers=live.auth(owner), json={"sub": reader, "access": "read"})
    assert r.status_code == 200, r.text
    token = max(written, r.headers["x-consistency-token"], key=ConsistencyToken.parse)
    body = {"query": word, "mode": "keyword"}
    # An answer showing a twin's text is never kept at the edge, the owner's own included: a
    # PoP's cache hit would reach no audit trail.
    r = await search(live, http, "iad", body, sub=owner, token=token)
    assert ids(r) == [art] and "no-store" in r.headers.get("cache-control", "")
    for _ in range(3):  # the grantee's shows it through the grant: never kept at the edge
        r = await search(live, http, "iad", body, sub=reader, token=token)
        assert ids(r) == [art] and r.headers["x-cache"] == "MISS", r.headers
        assert "no-store" in r.headers["cache-control"]
