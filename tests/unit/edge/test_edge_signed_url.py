"""Signed-URL actions (an artifact's bytes) at the edge: no JWT, the per-address anonymous
bucket, no cache, no session floor, an anonymous hop; every other action still needs a JWT."""

from __future__ import annotations

import msgspec

from mbedge import HubRequest, HubResponse
from mbwire import HopSigner
from tests.unit.edge.edge_fakes import HOP_SECRET, FakeHubs, make_rig, token

QUERY = "exp=1900000000&sig=" + "s" * 43
CONTENT = "/v1/artifacts/art-1/content"


def bytes_handler(region: str, request: HubRequest) -> HubResponse:
    return HubResponse(200, {"content-type": "application/octet-stream",
                             "x-consistency-token": "L0000000000000020", "x-mb-hub": region},
                       b"the bytes")


def hop_principal(request: HubRequest, method: str, path: str, body: bytes = b"") -> object:
    return HopSigner(HOP_SECRET).verify(method, path, request.headers,
                                        request.headers["x-request-id"], query=QUERY, body=body)


async def test_upload_passes_without_a_jwt_on_an_anonymous_hop() -> None:
    rig = make_rig()
    r = await rig.call("PUT", CONTENT, query=QUERY, body=b"payload",
                       headers={"content-type": "text/plain"})
    assert r.status == 200
    (region, sent), = rig.hubs.seen
    assert region == "ams" and sent.body == b"payload"
    assert sent.headers["content-type"] == "text/plain"
    # The hop verifies, body and all, and carries no principal: the hub checks the URL itself.
    assert hop_principal(sent, "PUT", CONTENT, b"payload") is None
    assert "ratelimit-remaining" in r.headers  # counted in the anonymous bucket
    rig.close()


async def test_a_bearer_token_on_a_signed_url_is_not_used() -> None:
    """Whoever holds the URL holds the right; a token beside it neither helps nor identifies."""
    rig = make_rig()
    r = await rig.call("GET", CONTENT, query=QUERY, token="not even a jwt")
    assert r.status == 200
    assert hop_principal(rig.hubs.seen[0][1], "GET", CONTENT) is None
    assert "authorization" not in rig.hubs.seen[0][1].headers
    rig.close()


async def test_downloads_are_never_cached_and_keep_no_session_floor() -> None:
    rig = make_rig(FakeHubs(handler=bytes_handler))
    for _ in range(2):
        r = await rig.call("GET", CONTENT, query=QUERY)
        assert r.status == 200 and r.body == b"the bytes"
        assert "x-cache" not in r.headers
    assert len(rig.hubs.seen) == 2
    # Nothing the anonymous answers carried became anyone's floor.
    assert all("x-consistency-token" not in req.headers for _, req in rig.hubs.seen)
    await rig.call("GET", "/v1/twins/t1", token=token("alice"))
    assert "x-consistency-token" not in rig.hubs.seen[-1][1].headers
    rig.close()


async def test_the_anonymous_bucket_limits_signed_urls() -> None:
    rig = make_rig(anonymous_limit_per_minute=2)
    statuses = [(await rig.call("GET", CONTENT, query=QUERY)).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(rig.hubs.seen) == 2
    rig.close()


async def test_a_url_without_its_signature_is_refused_at_the_edge() -> None:
    rig = make_rig()
    for query in ("", "exp=1900000000", "sig=" + "s" * 43, "exp=soon&sig=" + "s" * 43):
        r = await rig.call("GET", CONTENT, query=query)
        assert r.status == 422, query
        assert r.headers["content-type"] == "application/problem+json"
    assert rig.hubs.seen == []
    rig.close()


async def test_an_oversized_upload_is_refused_at_the_edge() -> None:
    rig = make_rig(max_body_bytes=1024)
    r = await rig.call("PUT", CONTENT, query=QUERY, body=b"x" * 1025)
    assert r.status == 413
    assert msgspec.json.decode(r.body)["limit"] == 1024
    assert rig.hubs.seen == []
    rig.close()


async def test_every_other_action_still_needs_a_jwt() -> None:
    rig = make_rig()
    for method, path in (("GET", "/v1/artifacts/art-1"), ("POST", "/v1/artifacts"),
                         ("POST", CONTENT), ("GET", "/v1/twins/content")):
        r = await rig.call(method, path, query=QUERY)
        assert r.status == 401, (method, path)
    assert rig.hubs.seen == []
    rig.close()
