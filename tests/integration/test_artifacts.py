"""Artifacts end to end through the edges: announce, PUT the bytes to the signed URL, read the
metadata, download; refused uploads store nothing; URLs are bound to their artifact, method
and expiry; another tenant's artifact does not exist for them; a text artifact becomes a
knowledge document of its twin, with chunks, in the primary. What is stored is sealed
(test_artifacts_sealed.py looks for the plaintext)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import psycopg
import pytest
from websockets.asyncio.client import connect

from blobs import UrlSigner
from blobs.sealed import sealed_size
from mbwire import HopSigner

from .conftest import LiveStack
from .test_realtime import frame, ws_url

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
NOTES = b"# Lighthouse notes\n\nThe keeper trims the wick at dusk.\n\n" + b"Fresnel lens. " * 40


def rows(live: LiveStack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()


def blob_path(live: LiveStack, artifact_id: str) -> Path:
    return live.stack.data_dir / "blobs" / "artifacts" / artifact_id


def assert_problem(r: httpx.Response, status: int, text: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert text in r.json()["detail"], r.json()


async def new_twin(live: LiveStack, http: httpx.AsyncClient, owner: str) -> str:
    twin_id = f"art-{uuid.uuid4().hex[:10]}"
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins", headers={
        **live.auth(owner, tier="pro"), **JSON}, json={"twin_id": twin_id, "profile": {}})
    assert r.status_code == 201, r.text
    return twin_id


async def announce(live: LiveStack, http: httpx.AsyncClient, owner: str, twin_id: str,
                   data: bytes, content_type: str = "text/markdown", *,
                   size: int | None = None, sha: str | None = None) -> dict[str, Any]:
    r = await http.post(f"{live.topology.edges['ams']}/v1/artifacts", headers={
        **live.auth(owner, tier="pro"), **JSON}, json={
        "twin_id": twin_id, "content_type": content_type,
        "size": len(data) if size is None else size,
        "sha256": sha or hashlib.sha256(data).hexdigest(), "metadata": {"title": "Notes"}})
    assert r.status_code == 201, r.text
    assert r.headers["x-consistency-token"] == r.json()["consistency_token"]
    return r.json()


async def get(live: LiveStack, http: httpx.AsyncClient, sub: str, artifact_id: str,
              token: str | None = None, region: str = "ams") -> httpx.Response:
    headers = live.auth(sub, tier="pro")
    if token:
        headers["X-Consistency-Token"] = token
    return await http.get(f"{live.topology.edges[region]}/v1/artifacts/{artifact_id}",
                          headers=headers)


def status_of(live: LiveStack, artifact_id: str) -> str:
    return rows(live, "select status from artifacts where artifact_id = %s", artifact_id)[0][0]


async def test_create_upload_get_download(live: LiveStack, http: httpx.AsyncClient) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES)
    artifact = created["artifact_id"]
    assert created["upload_url"].startswith(f"{live.topology.edges['ams']}/v1/artifacts/")
    assert status_of(live, artifact) == "pending"

    put = await http.put(created["upload_url"], content=NOTES,
                         headers={"Content-Type": "text/markdown"})
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "stored" and put.json()["indexed"] is True
    stored = blob_path(live, artifact).read_bytes()  # sealed: the plaintext's size and more
    assert len(stored) == sealed_size(len(NOTES)) and b"keeper" not in stored

    # Read in another region with the upload's token: the replica shows it, stored.
    r = await get(live, http, "ada", artifact, put.headers["x-consistency-token"], "sin")
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["twin_id"], view["size"], view["status"], view["indexed"]) == (
        twin, len(NOTES), "stored", True)
    assert view["sha256"] == hashlib.sha256(NOTES).hexdigest()
    assert view["metadata"] == {"title": "Notes"}
    assert view["download_url"].startswith(f"{live.topology.edges['sin']}/v1/artifacts/")
    assert "x-consistency-token" in r.headers

    down = await http.get(view["download_url"])
    assert down.status_code == 200
    assert down.content == NOTES
    assert down.headers["content-type"].split(";")[0] == "text/markdown"

    # A second upload to the same artifact: it is stored already.
    again = await http.put(created["upload_url"], content=NOTES)
    assert_problem(again, 409, "already stored")


async def test_text_artifact_is_a_knowledge_document_of_its_twin(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES)
    assert (await http.put(created["upload_url"], content=NOTES)).status_code == 200
    artifact = created["artifact_id"]
    docs = rows(live, "select kind, twin_id, owner_sub, title from knowledge_docs"
                      " where doc_id = %s", artifact)
    assert docs == [("artifact", twin, "ada", artifact)]  # its title ("Notes") is sealed
    chunks = rows(live, "select body, sealed from knowledge_chunks where doc_id = %s order by n",
                  artifact)
    assert chunks and all(body is None and sealed for body, sealed in chunks)
    feed = rows(live, "select kind from change_feed where key = %s order by id", artifact)
    # Its document's row is a twin's (``memory``): the hubs' indexes follow it, no channel.
    assert [k for (k,) in feed] == ["artifact", "memory", "artifact"]


async def test_a_text_artifact_is_never_announced_on_the_public_channel(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    """A subscriber of ``global`` (any caller may be one) hears the corpus's documents, never a
    twin's: the artifact is written first, so its announcement would come before the
    knowledge document's (the feed is in commit order)."""
    twin = await new_twin(live, http, "ada")
    async with connect(ws_url(live, "ams"), additional_headers=live.auth("eve", tier="pro")) as ws:
        await ws.send(msgspec.json.encode({"op": "subscribe", "channels": ["global"]}).decode())
        assert (await frame(ws))["op"] == "subscribed"
        created = await announce(live, http, "ada", twin, NOTES)
        assert (await http.put(created["upload_url"], content=NOTES)).status_code == 200
        doc_id = f"kn-{uuid.uuid4().hex[:12]}"
        r = await http.post(f"{live.topology.edges['ams']}/v1/knowledge",
                            headers={**live.auth("curator"), **JSON},
                            json={"id": doc_id, "title": "Public", "body": "Tides and moons."})
        assert r.status_code == 201, r.text
        heard = [await frame(ws)]
        while heard[-1].get("data", {}).get("doc_id") != doc_id:
            heard.append(await frame(ws))
    announced = {f.get("data", {}).get("doc_id") for f in heard}
    assert created["artifact_id"] not in announced
    assert heard[-1]["channel"] == "global" and heard[-1]["event"] == "knowledge"


async def test_binary_artifact_is_stored_not_indexed(live: LiveStack,
                                                     http: httpx.AsyncClient) -> None:
    twin = await new_twin(live, http, "ada")
    data = bytes(range(256)) * 10
    created = await announce(live, http, "ada", twin, data, "image/png")
    put = await http.put(created["upload_url"], content=data,
                         headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text
    assert put.json()["indexed"] is False
    assert rows(live, "select 1 from knowledge_docs where doc_id = %s",
                created["artifact_id"]) == []


@pytest.mark.parametrize(("body", "field"), [
    (NOTES + b"!", "size"),                    # longer than announced
    (NOTES[:-1], "size"),                      # shorter
    (NOTES[:-1] + b"?", "sha256"),             # same size, other bytes
])
async def test_mismatched_bytes_store_nothing(live: LiveStack, http: httpx.AsyncClient,
                                              body: bytes, field: str) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES)
    r = await http.put(created["upload_url"], content=body)
    assert_problem(r, 422, f"announced {field}")
    artifact = created["artifact_id"]
    assert not blob_path(live, artifact).exists()
    assert status_of(live, artifact) == "pending"
    assert rows(live, "select 1 from knowledge_docs where doc_id = %s", artifact) == []
    # The right bytes still go in afterwards.
    assert (await http.put(created["upload_url"], content=NOTES)).status_code == 200


async def test_oversize_is_refused(live: LiveStack, http: httpx.AsyncClient) -> None:
    twin = await new_twin(live, http, "ada")
    r = await http.post(f"{live.topology.edges['ams']}/v1/artifacts", headers={
        **live.auth("ada", tier="pro"), **JSON}, json={
        "twin_id": twin, "content_type": "text/plain", "size": (64 << 20) + 1,
        "sha256": "0" * 64})
    assert_problem(r, 422, "$.size")
    # A body over the action's limit (the table's 64 MiB) never reaches a hub; nothing is stored.
    created = await announce(live, http, "ada", twin, b"small")
    huge = await http.put(created["upload_url"], content=b"x" * ((64 << 20) + 1))
    assert_problem(huge, 413)
    assert not blob_path(live, created["artifact_id"]).exists()
    assert status_of(live, created["artifact_id"]) == "pending"


def _with(url: str, **changes: str) -> str:
    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()} | changes
    return split._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


async def test_expired_and_altered_urls_are_403(live: LiveStack, http: httpx.AsyncClient) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES)
    url, artifact = created["upload_url"], created["artifact_id"]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    exp = int(parse_qs(urlsplit(url).query)["exp"][0])
    # Signed with the stack's real secret, but an hour ago.
    signer = UrlSigner(live.secrets.artifact_url_secret, clock=lambda: exp - 7200)
    expired, _ = signer.url(live.topology.edges["ams"], "PUT", artifact, 60)
    for bad, why in ((_with(url, sig=flipped), "does not match"),
                     (_with(url, exp=str(exp + 1)), "does not match"),
                     (expired, "expired")):
        assert_problem(await http.put(bad, content=NOTES), 403, why)
    # An upload URL does not download.
    assert_problem(await http.get(url), 403, "does not match")
    assert not blob_path(live, artifact).exists()
    assert status_of(live, artifact) == "pending"


async def test_another_tenants_artifact_does_not_exist_for_them(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES)
    put = await http.put(created["upload_url"], content=NOTES)
    artifact, token = created["artifact_id"], put.headers["x-consistency-token"]
    assert_problem(await get(live, http, "mallory", artifact, token), 404, "does not exist")
    # Nor may they announce artifacts on the twin (they may not write it).
    r = await http.post(f"{live.topology.edges['ams']}/v1/artifacts", headers={
        **live.auth("mallory", tier="pro"), **JSON}, json={
        "twin_id": twin, "content_type": "text/plain", "size": 1, "sha256": "0" * 64})
    assert_problem(r, 403)
    # A URL for their own artifact with Ada's id in it is useless.
    own_twin = await new_twin(live, http, "mallory")
    theirs = await announce(live, http, "mallory", own_twin, b"mine")
    stored = await http.put(theirs["upload_url"], content=b"mine")
    assert stored.status_code == 200
    # With the upload's token: an upload is anonymous (a signed URL), so no session floor at
    # the PoP carries it to this read for us.
    view = (await get(live, http, "mallory", theirs["artifact_id"],
                      stored.headers["x-consistency-token"])).json()
    for url in (view["download_url"], theirs["upload_url"]):
        swapped = url.replace(theirs["artifact_id"], artifact)
        method = "GET" if url == view["download_url"] else "PUT"
        r = await http.request(method, swapped, content=None if method == "GET" else NOTES)
        assert_problem(r, 403, "does not match")
    # A grant opens it.
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins/{twin}/grants", headers={
        **live.auth("ada", tier="pro"), **JSON}, json={"sub": "mallory", "access": "read"})
    assert r.status_code == 200, r.text
    seen = await get(live, http, "mallory", artifact, r.headers["x-consistency-token"])
    assert seen.status_code == 200 and seen.json()["artifact_id"] == artifact


async def test_unknown_artifact_and_twin_are_404(live: LiveStack, http: httpx.AsyncClient) -> None:
    assert_problem(await get(live, http, "ada", "no-such-artifact"), 404)
    r = await http.post(f"{live.topology.edges['ams']}/v1/artifacts", headers={
        **live.auth("ada", tier="pro"), **JSON}, json={
        "twin_id": "no-such-twin", "content_type": "text/plain", "size": 1, "sha256": "0" * 64})
    assert_problem(r, 404, "does not exist")
    # A well-signed URL for an artifact no one announced.
    signer = UrlSigner(live.secrets.artifact_url_secret)
    for method in ("PUT", "GET"):
        url, _ = signer.url(live.topology.edges["ams"], method, "never-announced", 60)
        assert_problem(await http.request(method, url, content=b"x" if method == "PUT" else None),
                       404)


async def test_pending_artifact_has_no_download_url(live: LiveStack,
                                                    http: httpx.AsyncClient) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES)
    r = await get(live, http, "ada", created["artifact_id"], created["consistency_token"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["download_url"] is None


async def _grant(live: LiveStack, http: httpx.AsyncClient, owner: str, twin: str, sub: str,
                 access: str) -> str:
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins/{twin}/grants", headers={
        **live.auth(owner, tier="pro"), **JSON}, json={"sub": sub, "access": access})
    assert r.status_code == 200, r.text
    token: str = r.headers["x-consistency-token"]
    return token


async def test_an_upload_url_dies_with_its_announcers_write_access(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    grantee = f"writer-{uuid.uuid4().hex[:8]}"
    twin = await new_twin(live, http, "ada")
    await _grant(live, http, "ada", twin, grantee, "write")
    created = await announce(live, http, grantee, twin, NOTES)
    artifact = created["artifact_id"]
    r = await http.delete(f"{live.topology.edges['ams']}/v1/twins/{twin}/grants/{grantee}",
                          headers=live.auth("ada", tier="pro"))
    assert r.status_code == 200, r.text

    put = await http.put(created["upload_url"], content=NOTES)
    assert_problem(put, 403, "may no longer write")
    assert not blob_path(live, artifact).exists()
    assert status_of(live, artifact) == "pending"
    assert rows(live, "select 1 from knowledge_docs where doc_id = %s", artifact) == []
    seen = await get(live, http, "ada", artifact, r.headers["x-consistency-token"])
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == "pending" and seen.json()["indexed"] is False
    found = await http.post(f"{live.topology.edges['ams']}/v1/knowledge/query", headers={
        **live.auth("ada", tier="pro"), **JSON,
        "X-Consistency-Token": r.headers["x-consistency-token"]},
        json={"query": "keeper trims the wick", "mode": "keyword", "limit": 50})
    assert found.status_code == 200, found.text
    assert artifact not in [hit["id"] for hit in found.json()["results"]]

    # A write grant given again opens the same URL (it is the announcer's access that counts,
    # at the moment of the upload).
    await _grant(live, http, "ada", twin, grantee, "write")
    assert (await http.put(created["upload_url"], content=NOTES)).status_code == 200


async def test_a_superuser_announcer_uploads_to_anothers_twin(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    twin = await new_twin(live, http, "ada")
    r = await http.post(f"{live.topology.edges['ams']}/v1/artifacts", headers={
        **live.auth("curator", tier="pro", role="admin"), **JSON}, json={
        "twin_id": twin, "content_type": "text/plain", "size": 5,
        "sha256": hashlib.sha256(b"hello").hexdigest()})
    assert r.status_code == 201, r.text
    put = await http.put(r.json()["upload_url"], content=b"hello")
    assert put.status_code == 200, put.text


async def test_a_download_answers_the_artifacts_own_content_type_as_an_attachment(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    twin = await new_twin(live, http, "ada")
    created = await announce(live, http, "ada", twin, NOTES, "text/html")
    put = await http.put(created["upload_url"], content=NOTES)
    assert put.status_code == 200, put.text
    view = (await get(live, http, "ada", created["artifact_id"],
                      put.headers["x-consistency-token"])).json()
    down = await http.get(view["download_url"])
    assert down.status_code == 200 and down.content == NOTES
    assert down.headers["content-type"].split(";")[0] == "text/html"
    # At the hub: a stored type a browser would render (text/html) is never sniffed or shown
    # inline from our origin.
    split = urlsplit(view["download_url"])
    hop = HopSigner(live.secrets.edge_hop_secret).sign("GET", split.path, None, "t-ct",
                                                       query=split.query)
    at_hub = await http.get(f"{live.topology.hubs['ams']}{split.path}?{split.query}",
                            headers={**hop, "x-request-id": "t-ct",
                                     "X-Consistency-Token": put.headers["x-consistency-token"]})
    assert at_hub.status_code == 200, at_hub.text
    assert at_hub.headers["content-type"].split(";")[0] == "text/html"
    assert at_hub.headers["x-content-type-options"] == "nosniff"
    assert at_hub.headers["content-disposition"].startswith("attachment")
