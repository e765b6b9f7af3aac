"""A twin's artifacts at rest hold no plaintext, and still answer it: markers in a text
artifact's body, title, tags and source, and in a binary artifact of several sealed segments,
are looked for in the blob files, the raw rows on the primary (artifacts.metadata,
knowledge_docs, knowledge_chunks' body, sealed and tsv) and every hub's search-index files;
meanwhile a download answers the bytes, and a keyword search for the marker finds the
artifact's document for its owner (with its snippet, title, tags and source opened, and through
the tags and source filters), and never for a stranger. A control marker in public knowledge,
which is stored in the clear, is found by the same index scan, so a scan that reads nothing
fails (the markers are random each: the index's pages are compressed)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from blobs.sealed import SEGMENT, sealed_size

from .conftest import REGIONS, LiveStack
from .test_artifacts import blob_path, new_twin

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}


def rows(live: LiveStack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()


def holding(root: Path, marker: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and marker in p.read_bytes()]


async def upload(live: LiveStack, http: httpx.AsyncClient, owner: str, twin: str, data: bytes,
                 content_type: str, metadata: dict[str, Any]) -> tuple[str, str]:
    r = await http.post(f"{live.topology.edges['ams']}/v1/artifacts", headers={
        **live.auth(owner, tier="pro"), **JSON}, json={
        "twin_id": twin, "content_type": content_type, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "metadata": metadata})
    assert r.status_code == 201, r.text
    put = await http.put(r.json()["upload_url"], content=data,
                         headers={"Content-Type": content_type})
    assert put.status_code == 200, put.text
    assert put.json()["metadata"] == metadata
    return put.json()["artifact_id"], put.headers["x-consistency-token"]


async def search(live: LiveStack, http: httpx.AsyncClient, sub: str, token: str, region: str,
                 body: dict[str, Any]) -> list[dict[str, Any]]:
    r = await http.post(f"{live.topology.edges[region]}/v1/knowledge/query", headers={
        **live.auth(sub, tier="pro"), **JSON, "X-Consistency-Token": token}, json=body)
    assert r.status_code == 200, r.text
    hits: list[dict[str, Any]] = r.json()["results"]
    return hits


async def test_artifacts_are_sealed_at_rest_and_answered_in_the_clear(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    # Each marker random on its own: the index's payload pages are LZ4-compressed, and a marker
    # sharing a run of 4 bytes with text before it would be stored as a back-reference.
    marker, title, tag, source, control = (f"zq{uuid.uuid4().hex[:14]}" for _ in range(5))
    run = uuid.uuid4().hex[:10]
    owner, stranger = f"sealart-{run}", f"stranger-{run}"
    twin = await new_twin(live, http, owner)
    text = (f"Harbour log. The keeper wrote {marker} in the margin, then trimmed the wick.\n\n"
            "Calm sea all night.").encode()
    meta = {"title": title, "tags": [tag], "source": source}
    doc, _ = await upload(live, http, owner, twin, text, "text/plain", meta)
    # Several segments, the marker in each (and across a segment boundary).
    binary = bytearray(b"\x00" * (2 * SEGMENT + 1000))
    for at in (10, SEGMENT - 5, SEGMENT + 77, 2 * SEGMENT + 500):
        binary[at:at + len(marker)] = marker.encode()
    blob, _ = await upload(live, http, owner, twin, bytes(binary), "application/octet-stream",
                           {"title": title})
    r = await http.post(f"{live.topology.edges['ams']}/v1/knowledge",
                        headers=live.auth("curator", tier="internal"),
                        json={"title": "Open", "body": f"Anyone reads {control} here."})
    assert r.status_code == 201, r.text
    token = r.headers["x-consistency-token"]

    # Answered in the clear, in every region: the bytes, the metadata, the search.
    for region in REGIONS:
        for artifact_id, data in ((doc, text), (blob, bytes(binary))):
            view = await http.get(f"{live.topology.edges[region]}/v1/artifacts/{artifact_id}",
                                  headers={**live.auth(owner, tier="pro"),
                                           "X-Consistency-Token": token})
            assert view.status_code == 200, view.text
            assert view.json()["metadata"]["title"] == title
            down = await http.get(view.json()["download_url"])
            assert down.status_code == 200 and down.content == data
        hits = await search(live, http, owner, token, region,
                            {"query": marker, "mode": "keyword"})
        assert [h["id"] for h in hits] == [doc]
        assert f"<b>{marker}</b>" in hits[0]["snippet"]
        assert (hits[0]["title"], hits[0]["tags"], hits[0]["source"]) == (title, [tag], source)
        for filters in ({"tags": [tag]}, {"source": source}, {"twin_id": twin}):
            for mode in ("keyword", "semantic"):
                found = await search(live, http, owner, token, region,
                                     {"query": f"{marker} keeper", "mode": mode,
                                      "filters": filters})
                assert [h["id"] for h in found] == [doc], (filters, mode, found)
                assert marker in found[0]["snippet"] and found[0]["title"] == title
        for mode in ("keyword", "semantic", "hybrid"):
            assert doc not in [h["id"] for h in await search(
                live, http, stranger, token, region, {"query": marker, "mode": mode,
                                                      "limit": 100})]

    # Stored sealed: the blobs, the rows, the hubs' index files.
    for artifact_id, size in ((doc, len(text)), (blob, len(binary))):
        stored = blob_path(live, artifact_id).read_bytes()
        assert len(stored) == sealed_size(size)
        assert marker.encode() not in stored
    raw = rows(live, "select metadata from artifacts where twin_id = %s", twin)
    assert len(raw) == 2 and all(title.encode() not in bytes(m) for (m,) in raw)
    (d,) = rows(live, "select title, tags, source from knowledge_docs where doc_id = %s", doc)
    assert d[0] == doc and tag not in d[1] and source != d[2]
    chunks = rows(live, "select body, sealed, tsv::text from knowledge_chunks"
                        " where doc_id = %s", doc)
    assert chunks
    for body, sealed, tsv in chunks:
        assert body is None and sealed and tsv
        for word in (marker, title, "keeper", "harbour", "margin"):
            assert word.encode() not in bytes(sealed) and word not in tsv
    # The hubs' index services keep their shards in DATA_DIR/index (flushed within a second of
    # a change): the public control must be found there, the twin's words nowhere.
    index = live.stack.data_dir / "index"
    for _ in range(50):
        if holding(index, control.encode()):
            break
        await asyncio.sleep(0.1)
    assert holding(index, control.encode()), "the scan found public knowledge nowhere"
    for word in (marker, title, tag, source):
        assert holding(index, word.encode()) == [], word
