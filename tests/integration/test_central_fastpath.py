"""Central's fast path for twin merges (``central.fastpath``) on the live stack, called as a hub
calls central (a hop signed with the central secret, straight to the twin's home shard). A query
string sends a merge through Litestar instead (the fast path never answers one; a merge takes no
query parameter and ignores one it does not know), so each request goes both ways and both
answers must agree: status, body (but the version, token and request id each write or request
has of its own), header names and the values that are not per request. The fast path's own
counter shows it answered the others."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from mbwire import HopSigner, Principal

from .conftest import LiveStack
from .test_central_shards import create, homed_on
from .test_metrics import scrape, value
from .test_twins import primary_scalar, yjs_edit

pytestmark = pytest.mark.integration

PATCH = {"content-type": "application/merge-patch+json"}
OCTETS = {"content-type": "application/octet-stream"}
VIA_LITESTAR = "via=litestar"
# Per write or per request: compared by shape, not value.
_OWN = {"version", "consistency_token", "request_id"}
_VOLATILE = {"x-request-id", "traceresponse", "x-consistency-token", "content-length", "date"}


class Shard:
    """A central shard called as a hub calls it: each request signed afresh."""

    def __init__(self, live: LiveStack, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.signer = HopSigner(live.secrets.central_hop_secret)

    def headers(self, method: str, path: str, body: bytes, who: Principal | None,
                extra: dict[str, str], query: str = "") -> dict[str, str]:
        rid = uuid.uuid4().hex
        hop = self.signer.sign(method, path, who, rid, query=query, body=body)
        return {**hop, "x-request-id": rid, **extra}

    async def send(self, method: str, path: str, body: bytes, who: Principal | None,
                   extra: dict[str, str], *, litestar: bool = False) -> httpx.Response:
        query = VIA_LITESTAR if litestar else ""
        return await self.http.request(
            method, self.url + path + (f"?{query}" if query else ""), content=body,
            headers=self.headers(method, path, body, who, extra, query))

    async def both(self, method: str, path: str, body: bytes, who: Principal | None,
                   extra: dict[str, str], slow_body: bytes | None = None,
                   ) -> tuple[httpx.Response, httpx.Response]:
        fast = await self.send(method, path, body, who, extra)
        slow = await self.send(method, path, body if slow_body is None else slow_body, who,
                               extra, litestar=True)
        return fast, slow

    async def served(self) -> dict[str, float]:
        found = await scrape(self.http, self.url)
        return {a: value(found, "memorybank_fast_path_total", action=a)
                for a in ("patch_twin", "post_twin_update")}


def alike(r: httpx.Response, key: str = "") -> tuple[int, Any, set[str], dict[str, str]]:
    """What two answers share; ``key``: an Idempotency-Key the body may name (each path has its
    own)."""
    body = r.json()
    if isinstance(body, dict):
        body = {k: (type(v).__name__ if k in _OWN else
                    v.replace(key, "KEY") if key and isinstance(v, str) else v)
                for k, v in body.items()}
    return (r.status_code, body, set(r.headers),
            {k: v for k, v in r.headers.items() if k not in _VOLATILE})


async def test_both_central_paths_answer_twin_merges_alike(live: LiveStack,
                                                           http: httpx.AsyncClient) -> None:
    writers = live.topology.writers
    twin = next(homed_on(0, len(writers), "fastw"))
    path, updates = f"/v1/twins/{twin}", f"/v1/twins/{twin}/updates"
    owner = Principal(sub="fastw-owner", tier="free")
    await create(live, http, twin, owner.sub)
    shard = Shard(live, http, writers[0])
    before = await shard.served()
    fast_count = {"patch_twin": 0, "post_twin_update": 0}

    def version() -> int:
        return int(primary_scalar(live, "select version from twins where twin_id = %s", twin))

    async def both(method: str, at: str, body: bytes, extra: dict[str, str], status: int,
                   who: Principal = owner, slow_body: bytes | None = None,
                   ) -> tuple[httpx.Response, httpx.Response]:
        fast, slow = await shard.both(method, at, body, who, extra, slow_body)
        fast_count["post_twin_update" if at == updates else "patch_twin"] += 1
        assert fast.status_code == status, fast.text
        assert alike(fast) == alike(slow), (fast.text, slow.text)
        assert fast.headers["x-served-by"] == "central=0"
        return fast, slow

    # A good patch and a good Yjs update (each path its own, so each is a version of its own),
    # then one that changes nothing (both keep the version).
    fast, slow = await both("PATCH", path, b'{"city": "Amsterdam"}', PATCH, 200,
                            slow_body=b'{"city": "Utrecht"}')
    assert slow.json()["version"] == fast.json()["version"] + 1
    assert fast.json()["twin_id"] == twin
    assert fast.headers["x-consistency-token"] == fast.json()["consistency_token"]
    fast, slow = await both("POST", updates, yjs_edit({"y": 1}), OCTETS, 200,
                            slow_body=yjs_edit({"y": 2}))
    assert slow.json()["version"] == fast.json()["version"] + 1
    fast, slow = await both("PATCH", path, b'{"y": 2}', PATCH, 200)
    assert slow.json()["version"] == fast.json()["version"] == version()

    # A keyed patch and its replay, under a key per path (the query is part of what a key is
    # bound to), then each key with another body.
    firsts, replays, reused, keys = [], [], [], []
    for litestar in (False, True):
        keys.append(uuid.uuid4().hex)
        keyed = {**PATCH, "idempotency-key": keys[-1]}
        body = b'{"keyed": %d}' % litestar
        first = await shard.send("PATCH", path, body, owner, keyed, litestar=litestar)
        again = await shard.send("PATCH", path, body, owner, keyed, litestar=litestar)
        other = await shard.send("PATCH", path, b'{"keyed": 9}', owner, keyed,
                                 litestar=litestar)
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()  # the same body, token included
        assert again.headers["x-consistency-token"] == first.headers["x-consistency-token"]
        assert other.status_code == 409 and other.json()["type"].endswith("idempotency-key-reused")
        firsts.append(first)
        replays.append(again)
        reused.append(other)
    fast_count["patch_twin"] += 3
    for pair in (firsts, replays, reused):
        assert alike(pair[0], keys[0]) == alike(pair[1], keys[1]), (pair[0].text, pair[1].text)

    # Refusals: nothing stored by either path.
    stored = version()
    await both("PATCH", path, b'{"a": 1}', {"content-type": "text/plain"}, 415)
    await both("POST", updates, b"{}", PATCH, 415)
    await both("PATCH", path, b'{"a": "' + b"x" * (1 << 20) + b'"}', PATCH, 413)
    await both("PATCH", path, b'{"a": ', PATCH, 400)  # not JSON at all: a 400
    await both("PATCH", path, b"[1, 2]", PATCH, 422)
    await both("PATCH", path, b'{"a\\u0000b": 1}', PATCH, 422)
    await both("PATCH", path, b'{"a": ' + b'{"a": ' * 80 + b"1" + b"}" * 81, PATCH, 422)
    await both("POST", updates, b"\x00\xff\xfe", OCTETS, 422)
    await both("PATCH", path, b'{"a": 1}', {**PATCH, "idempotency-key": "two words"}, 400)
    await both("PATCH", path, b'{"a": 1}', PATCH, 403,
               who=Principal(sub="fastw-stranger", tier="free"))
    await both("PATCH", f"/v1/twins/{twin}-nobody", b'{"a": 1}', PATCH, 404)
    assert version() == stored

    # A hop the fast path accepted is spent for Litestar's guard too (one replay cache).
    body = b'{"once": 1}'
    headers = shard.headers("PATCH", path, body, owner, PATCH)
    first = await http.patch(shard.url + path, content=body, headers=headers)
    again = await http.patch(shard.url + path, content=body, headers=headers)
    assert first.status_code == 200
    assert again.status_code == 401 and "replayed" in again.json()["detail"]
    fast_count["patch_twin"] += 1

    # The fast path answered every request without a query string (its hop verified), and
    # none with one.
    after = await shard.served()
    assert {a: after[a] - before[a] for a in after} == fast_count
