"""Session floors at the PoP: remembered from any answer, applied to later reads, never lowered;
plus the edge's path spelling and the circuit under tokened reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbedge import HubRequest, HubResponse
from mbedge.session import MemorySessions, wanted_token
from mbwire import ConsistencyToken
from mbwire.token import Tokens
from tests.unit.edge.edge_fakes import FakeHubs, make_rig, token


def tok(n: int) -> str:
    return str(ConsistencyToken(n))


class TokenHubs:
    """Writes answer token ``written``; reads answer whatever token they were sent (or 0x10)."""

    def __init__(self) -> None:
        self.written = 0x10

    def __call__(self, region: str, req: HubRequest) -> HubResponse:
        sent = req.headers.get("x-consistency-token")
        token = tok(self.written) if req.method != "GET" else (sent or tok(0x10))
        return HubResponse(200, {"content-type": "application/json",
                                 "x-consistency-token": token}, b"{}")


@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=40))
async def test_the_remembered_token_never_decreases(raised: list[int]) -> None:
    store, greatest = MemorySessions(), 0
    for n in raised:
        await store.raise_to("k", Tokens({"": n}))
        greatest = max(greatest, n)
        assert await store.get("k") == Tokens({"": greatest})


async def test_floors_expire_and_are_bounded() -> None:
    now = [0.0]
    store = MemorySessions(max_entries=2, ttl_s=10, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        await store.raise_to(key, Tokens({"": 1}))
    assert await store.get("a") is None  # least recently used, pushed out
    now[0] = 11
    assert await store.get("c") is None


@pytest.mark.parametrize(("sent", "floor", "wanted"), [
    (None, None, None),
    (None, 5, tok(5)),
    (tok(3), 5, tok(5)),      # the floor raises an older explicit token
    (tok(9), 5, tok(9)),      # a newer explicit token (another PoP's write) wins
    ("garbage", 5, "garbage"),  # left for the hub to refuse with its 400
])
def test_wanted_token_is_the_greater(sent: str | None, floor: int | None,
                                     wanted: str | None) -> None:
    assert wanted_token(sent, Tokens({"": floor}) if floor else None) == wanted


async def test_a_plain_read_after_a_write_carries_the_writes_token() -> None:
    hubs = TokenHubs()
    rig = make_rig(FakeHubs(handler=hubs))
    await rig.call("GET", "/v1/twins/t", token=token())  # caches an answer at 0x10
    hubs.written = 0x99
    w = await rig.call("PATCH", "/v1/twins/t", token=token(), body=b"{}")
    assert w.headers["x-consistency-token"] == tok(0x99)
    r = await rig.call("GET", "/v1/twins/t", token=token())
    assert r.headers["x-cache"] == "MISS"
    assert rig.hubs.seen[-1][1].headers["x-consistency-token"] == tok(0x99)
    # Another principal has no floor of its own.
    await rig.call("GET", "/v1/twins/t", token=token("bob"))
    assert "x-consistency-token" not in rig.hubs.seen[-1][1].headers


async def test_cached_answers_older_than_the_floor_are_skipped() -> None:
    hubs = TokenHubs()
    rig = make_rig(FakeHubs(handler=hubs))
    await rig.call("GET", "/v1/twins/t", token=token())
    assert (await rig.call("GET", "/v1/twins/t", token=token())).headers["x-cache"] == "HIT"
    # A write to another twin raises the floor without touching twin t's cached answer.
    hubs.written = 0x99
    await rig.call("PATCH", "/v1/twins/other", token=token(), body=b"{}")
    r = await rig.call("GET", "/v1/twins/t", token=token())
    assert r.headers["x-cache"] == "MISS"
    assert r.headers["x-consistency-token"] == tok(0x99)


async def test_trailing_or_doubled_slash_is_a_404_naming_the_path() -> None:
    rig = make_rig()
    for path, meant in (("/v1/twins/", "/v1/twins"), ("/v1//twins/a", "/v1/twins/a")):
        r = await rig.call("POST", path, token=token(), body=b"{}")
        assert r.status == 404
        assert repr(path) in r.body.decode() and repr(meant) in r.body.decode()
    assert rig.hubs.seen == []


async def test_a_tokened_read_that_times_out_leaves_the_circuit_closed() -> None:
    rig = make_rig(FakeHubs(mode={"ams": "timeout", "iad": "up", "sin": "up"}))
    for _ in range(4):
        r = await rig.call("GET", "/v1/twins/t", token=token(),
                           headers={"x-consistency-token": tok(5), "cache-control": "no-cache"})
        assert r.status == 200
    assert rig.edge.ports.health.snapshot()["ams"] == "closed"
    for _ in range(4):  # the same timeouts count without a caller's token (a floor is not one)
        await rig.call("GET", "/v1/twins/u", token=token("bob"),
                       headers={"cache-control": "no-cache"})
    assert rig.edge.ports.health.snapshot()["ams"] == "open"
