"""The load generator's signed requests pass a real receiver's hop check, every one of them: a hub
refuses a replayed hop and checks the body's digest, so a bench that reused one signature, or
signed without the body, measured 401s."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench import loadgen
from mbwire import HopSigner, Principal

SECRET = "bench-test-secret-0123456789"


def parse(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """(method, target, lower-cased headers, body) of one HTTP/1.1 request's bytes."""
    head, _, body = raw.partition(b"\r\n\r\n")
    line, *fields = head.decode("latin-1").split("\r\n")
    method, target, version = line.split(" ")
    assert version == "HTTP/1.1"
    headers = {k.lower(): v for k, v in (f.split(": ", 1) for f in fields)}
    return method, target, headers, body


def accept(receiver: HopSigner, raw: bytes) -> tuple[Principal | None, dict[str, str], bytes]:
    method, target, headers, body = parse(raw)
    path, _, query = target.partition("?")
    principal = receiver.verify(method, path, headers, headers["x-request-id"], query=query,
                                body=body)
    return principal, headers, body


@given(sub=st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
       query=st.sampled_from(["", "fields=profile", "a=%20b&c=d"]),
       sends=st.integers(min_value=2, max_value=5))
def test_a_signed_get_is_accepted_each_time_it_is_sent(sub: str, query: str, sends: int) -> None:
    receiver = HopSigner(SECRET)
    who = Principal(sub=sub, tier="internal")
    make = loadgen.signed(loadgen.Hop(HopSigner(SECRET), who), "GET", "127.0.0.1", 8101,
                          f"/v1/twins/{sub}", query=query)
    ids = set()
    for _ in range(sends):
        principal, headers, body = accept(receiver, make())
        assert principal == who
        assert body == b"" and "content-length" not in headers
        ids.add(headers["x-request-id"])
    assert len(ids) == sends


@given(bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_posts_sign_and_frame_their_bodies(bodies: list[bytes]) -> None:
    receiver = HopSigner(SECRET)
    hop = loadgen.Hop(HopSigner(SECRET), Principal(sub="w0", tier="internal"))
    head = loadgen.request_head("POST", "127.0.0.1", 8100, "/v1/twins/t/updates",
                                {"Content-Type": "application/octet-stream"})
    for sent in bodies:
        _, headers, body = accept(receiver, hop.request("POST", head, "/v1/twins/t/updates",
                                                        body=sent))
        assert body == sent
        assert int(headers["content-length"]) == len(sent)
