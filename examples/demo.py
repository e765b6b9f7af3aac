"""``memorybank demo``: two participants edit one twin at once from Amsterdam and Singapore with
their own Yjs documents, an agent in Ashburn reads it with the consistency token and sees both
edits merged; grants are listed and revoked; a curator ingests knowledge and a participant
uploads a text artifact, and searches from other regions find what each caller may read; then
events (seen live over a realtime subscription), a trajectory rebased after a 409, the agent
directory, recommendations, a transfer retried with its key and one batch of reads
(``examples/demo_more.py``), and last two Yjs providers (y-websocket's protocol, in Python:
``examples/yjs_provider.py``) through the first and last regions' edges (Amsterdam and
Singapore), editing the twin live and seeing each other's presence. Talks only to the edges,
through the SDK (memorybank_client) like a real client; prints what happened and how long."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from pycrdt import Doc, Map
from websockets.exceptions import WebSocketException

from devstack.secrets import Secrets, mint_token
from devstack.topology import Topology
from examples import demo_cells, demo_more
from examples.yjs_provider import YjsProvider, connect_provider
from memorybank_client import AsyncMemoryBank, Forbidden, ProblemError


class Client(AsyncMemoryBank):
    """A participant or agent: the SDK's client on one edge, named, with its last call's time."""

    def __init__(self, edge: str, token: str, who: str) -> None:
        super().__init__(edge, token)
        self.edge, self.who = edge, who
        self.started = 0.0

    def clock(self) -> None:
        self.started = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def header(self, name: str) -> str:
        return self.last_response.headers.get(name, "?") if self.last_response else "?"


async def _edit(client: Client, twin_id: str, doc: Doc, edits: dict[str, Any]) -> tuple[str, float]:
    """Sync the participant's doc from the service, edit it locally, send only the new part."""
    doc.apply_update(await client.twins.sync(twin_id, doc.get_state()))
    before = doc.get_state()
    profile = doc.get("profile", type=Map)
    with doc.transaction(origin=client.who):
        for key, value in edits.items():
            profile[key] = value
    client.clock()
    written = await client.twins.update(twin_id, doc.get_update(before))
    ms = client.ms
    print(f"  {client.who:<6} wrote {sorted(edits)} via {client.header('x-served-by')}: "
          f"version {written.version}, {ms:.1f} ms, token {written.consistency_token}")
    return written.consistency_token, ms


async def _run(topology: Topology, secrets: Secrets, cells: dict[str, Topology]) -> int:
    try:
        return await _steps(topology, secrets, cells)
    except ProblemError as problem:
        raise SystemExit(f"demo: {problem} (request {problem.request_id})") from problem


async def _steps(topology: Topology, secrets: Secrets, cells: dict[str, Topology]) -> int:
    regions = topology.regions
    first, last = regions[0], regions[-1]
    reader_region = regions[1] if len(regions) > 2 else regions[0]
    key = secrets.jwt_hs256_secret
    run = uuid.uuid4().hex[:8]
    alice_sub, bob_sub, agent_sub = f"alice-{run}", f"bob-{run}", f"agent-{run}"
    alice_jwt = mint_token(key, alice_sub, tier="pro", role="participant")
    bob_jwt = mint_token(key, bob_sub, tier="pro", role="participant")
    async with Client(topology.edges[first], alice_jwt, "alice") as alice, \
            Client(topology.edges[last], bob_jwt, "bob") as bob, \
            Client(topology.edges[reader_region],
                   mint_token(key, agent_sub, tier="pro", role="agent"), "agent") as agent, \
            Client(topology.edges[first], mint_token(key, f"curator-{run}", tier="internal"),
                   "curator") as curator, \
            Client(topology.edges[reader_region],
                   mint_token(key, f"scout-{run}", tier="pro", role="agent"), "scout") as scout:
        print(f"Memory Bank demo on regions {', '.join(regions)}")
        alice.clock()
        twin = await alice.twins.create(profile={"name": "Ada", "languages": ["en"]})
        twin_id = twin.twin_id
        print(f"1. alice created twin {twin_id} through the {first} edge "
              f"({alice.header('x-served-by')}) in {alice.ms:.1f} ms")
        await alice.twins.grant(twin_id, bob_sub, "write")
        await alice.twins.grant(twin_id, agent_sub, "read")
        print("2. alice granted bob write and the agent read access")

        print(f"3. alice ({first}) and bob ({last}) edit their own Yjs docs at the same time:")
        started = time.perf_counter()
        (token_a, _), (token_b, _) = await asyncio.gather(
            _edit(alice, twin_id, Doc(), {"city": "Amsterdam", "mood": "curious"}),
            _edit(bob, twin_id, Doc(), {"timezone": "Asia/Singapore", "skills": ["yjs"]}),
        )
        print(f"   both acknowledged within {(time.perf_counter() - started) * 1000:.1f} ms")

        # Tokens are opaque but totally ordered as strings: the greatest covers both writes.
        # The agent carries it from here on: every later read of its client sends it.
        token = agent.consistency_token = max(token_a, token_b)
        agent.clock()
        profile = (await agent.twins.get(twin_id)).profile
        print(f"4. the agent read it through the {reader_region} edge with token {token} "
              f"({agent.header('x-served-by')}, cache {agent.header('x-cache')}, "
              f"replica lag {agent.header('x-replica-lag-ms')} ms) in {agent.ms:.1f} ms:")
        print(f"   {profile}")
        merged = {"name", "languages", "city", "mood", "timezone", "skills"} <= set(profile)
        agent.clock()
        view = await agent.twins.get(twin_id, fields="name,city")
        print(f"5. read again with fields=name,city: {view.profile} (edge cache "
              f"{agent.header('x-cache')}, {agent.header('cache-control')}: a grantee's answer "
              f"is never cached at the edge, so revoking it holds at every PoP at once)")
        seen = []
        for _ in range(3):  # the owner's reads are cached; a hit spends a leased fleet unit
            alice.clock()
            await alice.twins.get(twin_id, fields="name")
            seen.append(f"{alice.header('x-cache')} {alice.ms:.1f} ms")
        print(f"6. alice read her own twin three times at {first}: {', '.join(seen)} (a hit is "
              "served only with a fleet unit the PoP leased on the read before)")
        if not merged:
            print("FAILED: the agent did not see both participants' edits")
            return 1

        grants = {g.sub.split("-")[0]: g.access for g in (await alice.twins.grants(twin_id)).grants}
        print(f"7. alice lists the twin's grants: {grants}")
        revoked = (await alice.twins.revoke(twin_id, agent_sub)).consistency_token
        try:
            await agent.twins.get(twin_id, consistency_token=revoked)
            refused = "200 (still readable)"
        except Forbidden as problem:
            refused = f"{problem.status} {problem.title}"
        print(f"8. alice revoked the agent's access; its next read with that token: "
              f"{refused} (problem+json)")
        async with httpx.AsyncClient(timeout=10) as http:
            doc = (await http.get(f"{agent.edge}/openapi.json")).json()
        operations = sorted(op["operationId"] for item in doc["paths"].values()
                            for op in item.values())
        print(f"9. the edge documents the API at /openapi.json (and /docs): "
              f"{len(operations)} actions: {', '.join(operations)}")
        if not refused.startswith("403"):
            print("FAILED: a revoked grant still let the agent read")
            return 1
        if not await _search(curator, alice, bob, agent, twin_id, run):
            return 1
        if not await demo_more.memory(alice, bob, scout, twin_id, run):
            return 1
        if not await demo_more.money(curator, alice, bob, alice_sub, bob_sub, twin_id, run):
            print("FAILED: the ledger or the batch did not answer as it should")
            return 1
        if not await _providers(alice, bob, (alice_jwt, bob_jwt), twin_id, (first, last)):
            return 1
        olga = mint_token(key, f"olga-{run}", tier="pro", role="participant")
        if not await demo_cells.residency(topology, cells, olga, run):
            return 1
        if not await demo_cells.access_log(alice, twin_id):
            return 1
        mia = mint_token(key, f"mia-{run}", tier="pro", role="participant")
        if not await demo_cells.forget(topology.edges[first], mia):
            return 1
        print("OK: both participants' concurrent edits merged; the agent read them "
              "in another region without waiting for a cache to expire; a revocation held; "
              "knowledge and a text artifact were found from other regions at once, the "
              "artifact only by those who may read its twin; events arrived live and were "
              "readable with their token; a stale trajectory write rebased from its 409; the "
              "directory, recommendations, a keyed transfer and a consistent batch answered; "
              "two Yjs providers in two regions saw each other's edits and presence live; a "
              "twin pinned to ru was served from its zone and never stored outside it; the "
              "twin's audit trail showed who accessed it; an erased twin was gone, with its "
              "signed receipt")
        return 0


async def _search(curator: Client, alice: Client, bob: Client, agent: Client, twin_id: str,
                  run: str) -> bool:
    """Knowledge and a text artifact, found from another region with the writes' tokens; the
    artifact only by those who may read its twin."""
    word = f"heron{run}"
    curator.clock()
    written = await curator.knowledge.ingest(
        "Herons", f"The grey {word} stands still in shallow water, then strikes at fish.",
        tags=["birds"])
    print(f"10. a curator ingested a knowledge document ({curator.header('x-served-by')}) in "
          f"{curator.ms:.1f} ms ({written.chunks} chunk, embedded once at central)")
    text = f"Field notes: a {word} fished at dawn by the canal.".encode()
    # Announce (size and sha256), then PUT to the signed URL: the SDK does both.
    await alice.artifacts.upload(twin_id, text, "text/markdown", {"title": "field notes"})
    print(f"11. alice uploaded a text artifact to her twin through its signed URL "
          f"({len(text)} bytes, checked against its size and sha256)")
    token = max(written.consistency_token, alice.consistency_token or "")
    found = {}
    for step, who in ((12, bob), (13, agent)):
        who.clock()
        results = await who.knowledge.query(f"{word} fishing", mode="hybrid", limit=5,
                                            consistency_token=token)
        found[who.who] = [(hit.kind, hit.title) for hit in results.results]
        print(f"{step}. {who.who} searched with the tokens ({who.header('x-served-by')}, "
              f"{results.mode}, {who.ms:.1f} ms): {found[who.who]}")
    ok = (("artifact", "field notes") in found["bob"] and ("knowledge", "Herons") in found["bob"]
          and ("artifact", "field notes") not in found["agent"]
          and ("knowledge", "Herons") in found["agent"])
    if not ok:
        print("FAILED: search did not show exactly what each caller may read")
    return ok


async def _providers(alice: Client, bob: Client, jwts: tuple[str, str], twin_id: str,
                     regions: tuple[str, str]) -> bool:
    """Step 22: alice and bob each open a Yjs provider on the twin (alice's through the first
    region's edge, bob's through the last's), each sets one key and sees the other's, presence
    set by one is seen by the other, and an HTTP read shows both keys."""
    keys = (f"note_from_{regions[0]}", f"note_from_{regions[1]}")
    started = time.perf_counter()
    try:
        async with connect_provider(alice.edge, twin_id, jwts[0],
                                    consistency_token=alice.consistency_token) as mine, \
                connect_provider(bob.edge, twin_id, jwts[1],
                                 consistency_token=alice.consistency_token) as theirs:
            print(f"22. two Yjs providers (y-websocket's protocol, examples/yjs_provider.py) "
                  f"synced the twin in {(time.perf_counter() - started) * 1000:.0f} ms: alice's "
                  f"through the {regions[0]} edge, bob's through the {regions[1]} edge, each "
                  f"holding its {len(mine.profile)} keys")
            seen = [await _hand_over("alice", mine, theirs, keys[0], f"alice, at {regions[0]}"),
                    await _hand_over("bob", theirs, mine, keys[1], f"bob, at {regions[1]}")]
            print(f"    {'; '.join(seen)}")
            ours, bobs = {"user": "alice", "editing": keys[0]}, {"user": "bob", "editing": keys[1]}
            mine.awareness.set_local_state(ours)
            theirs.awareness.set_local_state(bobs)
            await theirs.wait_for(lambda: ours in theirs.peers.values())
            await mine.wait_for(lambda: bobs in mine.peers.values())
            print(f"    presence: bob's provider sees {list(theirs.peers.values())}, alice's "
                  f"sees {list(mine.peers.values())}")
            clock, profile = time.perf_counter(), {}
            while time.perf_counter() - clock < 10:  # the providers' writes reach central,
                profile = (await bob.twins.get(twin_id)).profile  # then each replica
                if set(keys) <= set(profile):
                    break
                await asyncio.sleep(0.1)
            print(f"    bob read the twin over HTTP ({bob.header('x-served-by')}) after "
                  f"{(time.perf_counter() - clock) * 1000:.0f} ms: "
                  + ", ".join(f"{k}={profile.get(k)!r}" for k in keys))
    except (TimeoutError, ConnectionError, OSError, WebSocketException) as exc:
        print(f"FAILED: the Yjs providers did not sync: {exc!r}")
        return False
    if set(keys) <= set(profile):
        return True
    print("FAILED: an HTTP read did not show both providers' keys")
    return False


async def _hand_over(who: str, here: YjsProvider, there: YjsProvider, key: str,
                     value: str) -> str:
    """One key set in one provider's document, until the other provider has it."""
    clock = time.perf_counter()
    here.profile[key] = value  # doc.observe sends it to the hub as an update
    await there.wait_for(lambda: there.profile.get(key) == value)
    return (f"{who} set {key!r}, the other provider had it in "
            f"{(time.perf_counter() - clock) * 1000:.0f} ms")


def run(topology: Topology, secrets: Secrets, cells: dict[str, Topology] | None = None) -> int:
    """``cells``: the topology of each cell other than the home cell (step 23)."""
    return asyncio.run(_run(topology, secrets, cells or {}))
