"""``memorybank demo``: two participants edit one twin at once from Amsterdam and Singapore with
their own Yjs documents, an agent in Ashburn reads it with the consistency token and sees both
edits merged; grants are listed and revoked; a curator ingests knowledge and a participant
uploads a text artifact, and searches from other regions find what each caller may read. Talks
only to the edges, like a real client; prints what happened and how long."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from typing import Any

import httpx
from pycrdt import Doc, Map

from devstack.secrets import Secrets, mint_token
from devstack.topology import Topology


class Client:
    """A participant or agent: one token, one edge, the headers a real client would send."""

    def __init__(self, http: httpx.AsyncClient, edge: str, token: str, who: str) -> None:
        self.http, self.edge, self.who = http, edge, who
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, float]:
        headers = {**self.headers, **kw.pop("headers", {})}
        started = time.perf_counter()
        response = await self.http.request(method, self.edge + path, headers=headers, **kw)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            raise SystemExit(
                f"{self.who}: {method} {path} -> {response.status_code} {response.text}"
            )
        return response, elapsed


def _served(response: httpx.Response) -> str:
    return response.headers.get("x-served-by", "?")


async def _edit(client: Client, twin_id: str, doc: Doc, edits: dict[str, Any]) -> tuple[str, float]:
    """Sync the participant's doc from the service, edit it locally, send only the new part."""
    sv = base64.urlsafe_b64encode(doc.get_state()).decode().rstrip("=")
    response, _ = await client.call("GET", f"/v1/twins/{twin_id}/sync?sv={sv}")
    doc.apply_update(response.content)
    before = doc.get_state()
    profile = doc.get("profile", type=Map)
    with doc.transaction(origin=client.who):
        for key, value in edits.items():
            profile[key] = value
    update = doc.get_update(before)
    response, ms = await client.call(
        "POST", f"/v1/twins/{twin_id}/updates", content=update,
        headers={"Content-Type": "application/octet-stream"},
    )
    body = response.json()
    print(f"  {client.who:<6} wrote {sorted(edits)} via {_served(response)}: "
          f"version {body['version']}, {ms:.1f} ms, token {body['consistency_token']}")
    return str(body["consistency_token"]), ms


async def _run(topology: Topology, secrets: Secrets) -> int:
    regions = topology.regions
    first, last = regions[0], regions[-1]
    reader_region = regions[1] if len(regions) > 2 else regions[0]
    key = secrets.jwt_hs256_secret
    run = uuid.uuid4().hex[:8]
    alice_sub, bob_sub, agent_sub = f"alice-{run}", f"bob-{run}", f"agent-{run}"
    async with httpx.AsyncClient(timeout=10) as http:
        alice = Client(http, topology.edges[first],
                       mint_token(key, alice_sub, tier="pro", role="participant"), "alice")
        bob = Client(http, topology.edges[last],
                     mint_token(key, bob_sub, tier="pro", role="participant"), "bob")
        agent = Client(http, topology.edges[reader_region],
                       mint_token(key, agent_sub, tier="pro", role="agent"), "agent")

        print(f"Memory Bank demo on regions {', '.join(regions)}")
        response, ms = await alice.call(
            "POST", "/v1/twins", json={"profile": {"name": "Ada", "languages": ["en"]}})
        twin_id = response.json()["twin_id"]
        print(f"1. alice created twin {twin_id} through the {first} edge "
              f"({_served(response)}) in {ms:.1f} ms")
        for sub, access in ((bob_sub, "write"), (agent_sub, "read")):
            await alice.call("POST", f"/v1/twins/{twin_id}/grants",
                             json={"sub": sub, "access": access})
        print("2. alice granted bob write and the agent read access")

        print(f"3. alice ({first}) and bob ({last}) edit their own Yjs docs at the same time:")
        started = time.perf_counter()
        (token_a, _), (token_b, _) = await asyncio.gather(
            _edit(alice, twin_id, Doc(), {"city": "Amsterdam", "mood": "curious"}),
            _edit(bob, twin_id, Doc(), {"timezone": "Asia/Singapore", "skills": ["yjs"]}),
        )
        print(f"   both acknowledged within {(time.perf_counter() - started) * 1000:.1f} ms")

        # Tokens are opaque but totally ordered as strings: the greatest covers both writes.
        token = max(token_a, token_b)
        response, ms = await agent.call(
            "GET", f"/v1/twins/{twin_id}", headers={"X-Consistency-Token": token})
        profile = response.json()["profile"]
        print(f"4. the agent read it through the {reader_region} edge with token {token} "
              f"({_served(response)}, cache {response.headers.get('x-cache', '?')}, "
              f"replica lag {response.headers.get('x-replica-lag-ms', '?')} ms) in {ms:.1f} ms:")
        print(f"   {profile}")
        merged = {"name", "languages", "city", "mood", "timezone", "skills"} <= set(profile)
        for step, attempt in ((5, "again"), (6, "once more")):
            response, ms = await agent.call("GET", f"/v1/twins/{twin_id}?fields=name,city")
            print(f"{step}. read {attempt} with fields=name,city: {response.json()['profile']} "
                  f"(edge cache {response.headers.get('x-cache', '?')}, {ms:.1f} ms)")
        if not merged:
            print("FAILED: the agent did not see both participants' edits")
            return 1

        response, _ = await alice.call("GET", f"/v1/twins/{twin_id}/grants")
        grants = {g["sub"].split("-")[0]: g["access"] for g in response.json()["grants"]}
        print(f"7. alice lists the twin's grants: {grants}")
        response, _ = await alice.call("DELETE", f"/v1/twins/{twin_id}/grants/{agent_sub}")
        revoked = response.headers["x-consistency-token"]
        refused = await http.get(
            f"{agent.edge}/v1/twins/{twin_id}",
            headers={**agent.headers, "X-Consistency-Token": revoked})
        print(f"8. alice revoked the agent's access; its next read with that token: "
              f"{refused.status_code} {refused.json().get('title')} (problem+json)")
        doc = (await http.get(f"{agent.edge}/openapi.json")).json()
        operations = sorted(op["operationId"] for item in doc["paths"].values()
                            for op in item.values())
        print(f"9. the edge documents the API at /openapi.json (and /docs): "
              f"{len(operations)} actions: {', '.join(operations)}")
        if refused.status_code != 403:
            print("FAILED: a revoked grant still let the agent read")
            return 1
        curator = Client(http, topology.edges[first],
                         mint_token(key, f"curator-{run}", tier="internal"), "curator")
        if not await _search(curator, alice, bob, agent, twin_id, run):
            return 1
        print("OK: both participants' concurrent edits merged; the agent read them "
              "in another region without waiting for a cache to expire; a revocation held; "
              "knowledge and a text artifact were found from other regions at once, the "
              "artifact only by those who may read its twin")
        return 0


async def _search(curator: Client, alice: Client, bob: Client, agent: Client, twin_id: str,
                  run: str) -> bool:
    """Knowledge and a text artifact, found from another region with the writes' tokens; the
    artifact only by those who may read its twin."""
    word = f"heron{run}"
    response, ms = await curator.call("POST", "/v1/knowledge", json={
        "title": "Herons", "tags": ["birds"],
        "body": f"The grey {word} stands still in shallow water, then strikes at fish."})
    doc_token = response.headers["x-consistency-token"]
    print(f"10. a curator ingested a knowledge document ({_served(response)}) in {ms:.1f} ms "
          f"({response.json()['chunks']} chunk, embedded once at central)")
    text = f"Field notes: a {word} fished at dawn by the canal.".encode()
    response, _ = await alice.call("POST", "/v1/artifacts", json={
        "twin_id": twin_id, "content_type": "text/markdown", "size": len(text),
        "sha256": hashlib.sha256(text).hexdigest(), "metadata": {"title": "field notes"}})
    upload = await alice.http.put(response.json()["upload_url"], content=text)
    if upload.status_code != 200:
        print(f"FAILED: upload -> {upload.status_code} {upload.text}")
        return False
    art_token = upload.headers["x-consistency-token"]
    print(f"11. alice uploaded a text artifact to her twin through its signed URL "
          f"({len(text)} bytes, checked against its size and sha256)")
    token = max(doc_token, art_token)
    query = {"query": f"{word} fishing", "mode": "hybrid", "limit": 5}
    found = {}
    for step, who in ((12, bob), (13, agent)):
        response, ms = await who.call("POST", "/v1/knowledge/query", json=query,
                                      headers={"X-Consistency-Token": token})
        found[who.who] = [(hit["kind"], hit["title"]) for hit in response.json()["results"]]
        print(f"{step}. {who.who} searched with the tokens ({_served(response)}, "
              f"{response.json()['mode']}, {ms:.1f} ms): {found[who.who]}")
    ok = (("artifact", "field notes") in found["bob"] and ("knowledge", "Herons") in found["bob"]
          and ("artifact", "field notes") not in found["agent"]
          and ("knowledge", "Herons") in found["agent"])
    if not ok:
        print("FAILED: search did not show exactly what each caller may read")
    return ok


def run(topology: Topology, secrets: Secrets) -> int:
    return asyncio.run(_run(topology, secrets))
