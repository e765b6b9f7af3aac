"""Knowledge ingest end to end: through an edge and a hub to central, then what the primary
holds. A document, its chunks (with vectors and the embedder's name) and its change-feed row
are one transaction; a refused request stores none of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from knowledge.embed_local import LocalEmbedder
from mbwire import ConsistencyToken, HopSigner, Principal

from .conftest import LiveStack

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
LONG_BODY = "\n\n".join(f"Paragraph {i} about lighthouses. " + "beam " * 80 for i in range(12))


def rows(live: LiveStack, sql: str, *args: Any, url: str | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url or live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()


def stored(live: LiveStack, doc_id: str) -> dict[str, Any]:
    """Everything the primary holds for one document id."""
    docs = rows(live, "select kind, twin_id, owner_sub, title, tags, source, version"
                      " from knowledge_docs where doc_id = %s", doc_id)
    chunks = rows(live, "select n, body, embedder, array_length(embedding, 1)"
                        " from knowledge_chunks where doc_id = %s order by n", doc_id)
    feed = rows(live, "select version from change_feed where kind = 'knowledge' and key = %s"
                      " order by id", doc_id)
    return {"doc": docs[0] if docs else None, "chunks": chunks, "feed": [f[0] for f in feed]}


def new_id() -> str:
    return f"kn-{uuid.uuid4().hex[:12]}"


async def ingest(live: LiveStack, http: httpx.AsyncClient, doc: dict[str, Any], *,
                 sub: str = "curator", region: str = "ams", **claims: str) -> httpx.Response:
    return await http.post(f"{live.topology.edges[region]}/v1/knowledge",
                           headers={**live.auth(sub, **claims), **JSON}, json=doc)


def assert_problem(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_ingest_stores_document_chunks_vectors_and_feed_row(live: LiveStack,
                                                                  http: httpx.AsyncClient):
    doc_id = new_id()
    r = await ingest(live, http, {"id": doc_id, "title": "Lighthouses", "body": LONG_BODY,
                                  "tags": ["sea", "light"], "source": "almanac"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == doc_id
    assert r.headers["x-consistency-token"] == r.json()["consistency_token"]
    got = stored(live, doc_id)
    assert got["doc"] == ("knowledge", None, "curator", "Lighthouses", ["sea", "light"],
                          "almanac", 1)
    assert len(got["chunks"]) == r.json()["chunks"] > 1
    assert [c[0] for c in got["chunks"]] == list(range(len(got["chunks"])))
    assert got["chunks"][0][1].startswith("Lighthouses\n\n")
    # Central's default embedder (CENTRAL_EMBEDDER=local) made every vector.
    assert {(c[2], c[3]) for c in got["chunks"]} == {(LocalEmbedder.name, LocalEmbedder.dim)}
    assert got["feed"] == [1]

    # The token covers the write: a replica that has replayed it shows every chunk.
    token = ConsistencyToken.parse(r.json()["consistency_token"])
    replica = live.topology.postgres.replicas["sin"]
    deadline = time.monotonic() + 10
    while rows(live, "select pg_last_wal_replay_lsn() >= %s::pg_lsn", token.to_pg_lsn(),
               url=replica)[0][0] is not True:
        assert time.monotonic() < deadline, "the replica never replayed the ingest"
        await asyncio.sleep(0.02)
    on_replica = rows(live, "select count(*) from knowledge_chunks where doc_id = %s", doc_id,
                      url=replica)
    assert on_replica[0][0] == len(got["chunks"])


async def test_a_generated_id_when_none_is_given(live: LiveStack, http: httpx.AsyncClient):
    r = await ingest(live, http, {"title": "No id", "body": "A document without an id."})
    assert r.status_code == 201, r.text
    assert stored(live, r.json()["id"])["doc"] is not None


async def test_the_same_id_again_replaces_every_chunk(live: LiveStack, http: httpx.AsyncClient):
    doc_id = new_id()
    first = await ingest(live, http, {"id": doc_id, "title": "Old", "body": LONG_BODY,
                                      "tags": ["old"]})
    assert first.status_code == 201, first.text
    second = await ingest(live, http, {"id": doc_id, "title": "New", "body": "Only this now."})
    assert second.status_code == 201, second.text
    assert second.json()["chunks"] == 1
    assert second.json()["consistency_token"] > first.json()["consistency_token"]
    got = stored(live, doc_id)
    assert got["doc"][3:7] == ("New", [], None, 2)
    assert [c[1] for c in got["chunks"]] == ["New\n\nOnly this now."]
    assert got["feed"] == [1, 2]


async def test_delete_removes_document_and_chunks_with_a_feed_row(live: LiveStack,
                                                                  http: httpx.AsyncClient):
    doc_id = new_id()
    assert (await ingest(live, http, {"id": doc_id, "title": "T", "body": LONG_BODY})
            ).status_code == 201
    url = f"{live.topology.edges['iad']}/v1/knowledge/{doc_id}"
    r = await http.delete(url, headers=live.auth("curator"))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == doc_id
    assert r.headers["x-consistency-token"] == r.json()["consistency_token"]
    assert stored(live, doc_id) == {"doc": None, "chunks": [], "feed": [1, None]}

    again = await http.delete(url, headers=live.auth("curator"))
    assert_problem(again, 404)
    assert stored(live, doc_id)["feed"] == [1, None]


async def test_an_admin_role_may_ingest(live: LiveStack, http: httpx.AsyncClient):
    r = await ingest(live, http, {"id": new_id(), "title": "T", "body": "B"}, tier="pro",
                     role="admin")
    assert r.status_code == 201, r.text


async def test_a_caller_who_is_not_a_superuser_writes_nothing(live: LiveStack,
                                                             http: httpx.AsyncClient):
    doc_id = new_id()
    r = await ingest(live, http, {"id": doc_id, "title": "T", "body": "B"}, sub="mallory",
                     tier="pro")
    assert_problem(r, 403)
    assert stored(live, doc_id) == {"doc": None, "chunks": [], "feed": []}

    assert (await ingest(live, http, {"id": doc_id, "title": "T", "body": "B"})).status_code == 201
    d = await http.delete(f"{live.topology.edges['ams']}/v1/knowledge/{doc_id}",
                          headers=live.auth("mallory", tier="enterprise"))
    assert_problem(d, 403)
    assert stored(live, doc_id)["doc"] is not None


@pytest.mark.parametrize(("status", "content_type", "body"), [
    (422, "application/json", '{"id": "%s", "title": "", "body": "b"}'),
    (422, "application/json", '{"id": "%s", "title": "t", "body": ""}'),
    (422, "application/json", '{"id": "%s", "title": "t", "body": " \\n\\t "}'),
    (422, "application/json", '{"id": "%s", "title": "t", "body": "a\\u0000b"}'),
    (422, "application/json", '{"id": "%s", "title": "t", "body": "b", "source": "\\u0000"}'),
    (422, "application/json", '{"id": "%s", "title": "t", "body": "b", "colour": "red"}'),
    (422, "application/json", '{"id": "%s", "title": "t", "body": "b", "tags": [""]}'),
    (415, "text/plain", '{"id": "%s", "title": "t", "body": "b"}'),
    (413, "application/json", '{"id": "%s", "title": "t", "body": "' + "x" * (1 << 20) + '"}'),
    # Under the 1 MiB body limit, over central's 128 chunks (CENTRAL_MAX_DOC_CHUNKS).
    (413, "application/json", '{"id": "%s", "title": "t", "body": "'
     + "\\n\\n".join(f"Paragraph {i}. " + "word " * 150 for i in range(200)) + '"}'),
])
async def test_bad_input_is_a_problem_and_stores_nothing(
    live: LiveStack, http: httpx.AsyncClient, status: int, content_type: str, body: str,
) -> None:
    doc_id = new_id()
    r = await http.post(f"{live.topology.edges['ams']}/v1/knowledge", content=body % doc_id,
                        headers={**live.auth("curator"), "Content-Type": content_type})
    assert_problem(r, status)
    assert stored(live, doc_id) == {"doc": None, "chunks": [], "feed": []}


async def test_a_bad_id_is_a_422(live: LiveStack, http: httpx.AsyncClient):
    r = await ingest(live, http, {"id": "../etc", "title": "t", "body": "b"})
    assert_problem(r, 422)
    d = await http.delete(f"{live.topology.edges['ams']}/v1/knowledge/-bad",
                          headers=live.auth("curator"))
    assert_problem(d, 422)


async def test_knowledge_never_overwrites_or_deletes_an_artifacts_text(live: LiveStack,
                                                                        http: httpx.AsyncClient):
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins", headers=live.auth("ada"),
                        json={"profile": {}})
    assert r.status_code == 201, r.text
    twin_id, doc_id = r.json()["twin_id"], new_id()
    with psycopg.connect(live.topology.postgres.primary, autocommit=True) as conn:
        conn.execute("insert into knowledge_docs (doc_id, kind, twin_id, owner_sub, title)"
                     " values (%s, 'artifact', %s, 'ada', 'private notes')", (doc_id, twin_id))
    before = stored(live, doc_id)

    w = await ingest(live, http, {"id": doc_id, "title": "public now", "body": "overwritten"})
    assert_problem(w, 409)
    d = await http.delete(f"{live.topology.edges['ams']}/v1/knowledge/{doc_id}",
                          headers=live.auth("curator"))
    assert_problem(d, 404)
    assert stored(live, doc_id) == before


async def test_a_retried_keyed_ingest_without_an_id_replaces_its_first_attempt(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """As a hub forwards it to central (the edge retries a keyed write blind): the same
    Idempotency-Key from the same caller lands on the same document, never a second copy; the
    retry answers the stored answer of the first and stores nothing again (central/replay.py)."""
    key = f"ingest-{uuid.uuid4().hex}"
    body = msgspec.json.encode({"title": "Retried", "body": "Sent twice, stored once."})
    signer = HopSigner(live.secrets.central_hop_secret)
    ids = []
    for attempt in range(2):
        rid = f"retry-{attempt}"
        headers = {**signer.sign("POST", "/v1/knowledge", Principal(sub="curator", tier="internal"),
                                 rid, body=body),
                   "x-request-id": rid, "idempotency-key": key, **JSON}
        r = await http.post(f"{live.topology.central}/v1/knowledge", content=body,
                            headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert ids[0] == ids[1]
    assert r.headers["idempotent-replayed"] == "true"
    assert stored(live, ids[0])["feed"] == [1]


async def test_concurrent_replaces_of_one_id_never_mix_their_chunks(live: LiveStack,
                                                                    http: httpx.AsyncClient):
    doc_id, writers = new_id(), 6
    bodies = ["\n\n".join(f"Writer {w} paragraph {i}. " + f"w{w} " * 150 for i in range(w + 1))
              for w in range(writers)]
    answers = await asyncio.gather(*(
        ingest(live, http, {"id": doc_id, "title": f"W{w}", "body": bodies[w]},
               region=("ams", "iad", "sin")[w % 3])
        for w in range(writers)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    got = stored(live, doc_id)
    assert got["feed"] == list(range(1, writers + 1))
    assert got["doc"][6] == writers
    # The last to commit (the highest token) wins, with its chunks and only those.
    last = max(range(writers), key=lambda w: answers[w].json()["consistency_token"])
    assert got["doc"][3] == f"W{last}"
    assert len(got["chunks"]) == answers[last].json()["chunks"]
    assert all(f"w{last} " in c[1] for c in got["chunks"])
    assert not any(f"w{w} " in c[1] for c in got["chunks"] for w in range(writers) if w != last)
