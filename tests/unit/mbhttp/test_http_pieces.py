"""The Litestar pieces central and the hubs share, in-process (Litestar's TestClient, no
sockets): every error leaves as problem+json, request ids are echoed or replaced, and only
signed hops get past the guard."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar import Litestar, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.testing import TestClient

from mbhttp import RequestContextMiddleware, exception_handlers, require_principal
from mbhttp.guard import hop_guard
from mbwire import (
    Conflict,
    HopSigner,
    NotFound,
    PayloadTooLarge,
    Principal,
    Problem,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unprocessable,
)
from mbwire.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE

SECRET = "a-hop-secret-of-some-length"
PROBLEMS: dict[str, Problem] = {
    "not-found": NotFound("no twin x"),
    "conflict": Conflict("exists", reason="sync-first"),
    "unprocessable": Unprocessable("bad profile"),
    "rate-limited": RateLimited("slow down", retry_after=7),
    "unavailable": Unavailable("primary down", retry_after=2),
    "unauthorized": Unauthorized('no "token"'),
    "payload-too-large": PayloadTooLarge("too big"),
}


@get("/raise/{name:str}", sync_to_thread=False)
def raise_problem(name: FromPath[str]) -> None:
    raise PROBLEMS[name]


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("secret internals")


@post("/typed", sync_to_thread=False)
def typed(data: JSONBody[dict[str, int]]) -> dict[str, int]:
    return data


@get("/whoami", sync_to_thread=False)
def whoami(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"sub": require_principal(request).sub}


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def app(*, guarded: bool = False) -> Litestar:
    return Litestar(
        route_handlers=[raise_problem, boom, typed, whoami, healthz],
        middleware=[RequestContextMiddleware(served_by="test", extra_headers={"X-MB-Hub": "t"})],
        exception_handlers=exception_handlers(),
        guards=[hop_guard(HopSigner(SECRET))] if guarded else [],
        logging_config=None,
        openapi_config=None,
    )


def assert_problem(r: Any, status: int, slug: str, path: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == path
    assert body["request_id"] == r.headers["x-request-id"]
    return body


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_problem_renders_as_problem_json_with_its_headers(name: str) -> None:
    problem = PROBLEMS[name]
    with TestClient(app()) as client:
        r = client.get(f"/raise/{name}")
    body = assert_problem(r, problem.status, problem.slug, f"/raise/{name}")
    assert body["detail"] == problem.detail
    for header, value in problem.headers().items():
        assert r.headers[header] == value
    if name == "conflict":
        assert body["reason"] == "sync-first"  # extras travel in the body


def test_rate_limited_and_unavailable_say_when_to_retry() -> None:
    with TestClient(app()) as client:
        assert client.get("/raise/rate-limited").headers["retry-after"] == "7"
        assert client.get("/raise/unavailable").headers["retry-after"] == "2"
        assert "Bearer" in client.get("/raise/unauthorized").headers["www-authenticate"]


def test_an_unexpected_error_is_a_500_problem_without_internals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, "memorybank.errors"), TestClient(app()) as client:
        r = client.get("/boom")
    body = assert_problem(r, 500, "internal", "/boom")
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert body["title"] == "Internal error"
    assert any("unhandled error on GET /boom" in m for m in caplog.messages)


@pytest.mark.parametrize(
    "method,path,status,slug",
    [("GET", "/nowhere", 404, "not-found"), ("DELETE", "/boom", 405, "method-not-allowed")],
)
def test_framework_errors_are_problem_json_too(method: str, path: str, status: int,
                                               slug: str) -> None:
    with TestClient(app()) as client:
        r = client.request(method, path)
    assert_problem(r, status, slug, path)


def test_a_body_of_the_wrong_shape_is_a_problem_naming_the_field() -> None:
    with TestClient(app()) as client:
        r = client.post("/typed", json={"a": "not an int"})
    body = assert_problem(r, 422, "unprocessable", "/typed")
    assert body["errors"], body


@pytest.mark.parametrize("sane", ["abc", "req-1.2:3_X", "a" * 128])
def test_a_sane_request_id_is_echoed(sane: str) -> None:
    with TestClient(app()) as client:
        ok = client.get("/healthz", headers={"X-Request-Id": sane})
        failed = client.get("/raise/not-found", headers={"X-Request-Id": sane})
        unrouted = client.get("/nowhere", headers={"X-Request-Id": sane})
    assert ok.headers["x-request-id"] == sane
    for r in (failed, unrouted):
        assert r.headers["x-request-id"] == sane and r.json()["request_id"] == sane
    assert ok.headers["x-served-by"] == "test" and ok.headers["x-mb-hub"] == "t"
    assert ok.headers["traceresponse"].startswith("00-")


@pytest.mark.parametrize("insane", ["", "a b", "a" * 129, "x\u00e9", "id\x01", "<script>", "a/b"])
@pytest.mark.parametrize("path", ["/raise/not-found", "/nowhere"])
def test_an_insane_request_id_is_replaced(insane: str, path: str) -> None:
    """Also where no route matched (the middleware never ran): the problem carries a fresh
    id, in its body and its header alike."""
    with TestClient(app()) as client:
        r = client.get(path, headers={"X-Request-Id": insane.encode("latin-1")})
    made = r.headers["x-request-id"]
    assert made != insane and len(made) == 32 and int(made, 16) >= 0
    assert r.json()["request_id"] == made


def test_each_request_without_an_id_gets_its_own() -> None:
    with TestClient(app()) as client:
        ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_an_unsigned_request_is_a_401_problem() -> None:
    with TestClient(app(guarded=True)) as client:
        r = client.get("/whoami")
        health = client.get("/healthz")
    body = assert_problem(r, 401, "unauthorized", "/whoami")
    assert "through the edge" in body["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer ")
    assert health.status_code == 200  # open paths stay open


def test_a_signed_hop_gets_in_with_its_principal_and_a_forged_one_does_not() -> None:
    signer = HopSigner(SECRET)
    alice = Principal(sub="alice", tier="pro")
    with TestClient(app(guarded=True)) as client:
        good = client.get("/whoami", headers={
            "X-Request-Id": "r1", **signer.sign("GET", "/whoami", alice, "r1")})
        other_path = client.get("/whoami", headers={
            "X-Request-Id": "r2", **signer.sign("GET", "/elsewhere", alice, "r2")})
        other_secret = client.get("/whoami", headers={
            "X-Request-Id": "r3",
            **HopSigner("another-secret-0123456").sign("GET", "/whoami", alice, "r3")})
    assert good.status_code == 200 and good.json() == {"sub": "alice"}
    assert_problem(other_path, 401, "unauthorized", "/whoami")
    assert_problem(other_secret, 401, "unauthorized", "/whoami")


def test_a_signed_anonymous_hop_cannot_call_what_needs_a_caller() -> None:
    signer = HopSigner(SECRET)
    with TestClient(app(guarded=True)) as client:
        r = client.get("/whoami", headers={
            "X-Request-Id": "r4", **signer.sign("GET", "/whoami", None, "r4")})
    assert_problem(r, 401, "unauthorized", "/whoami")
