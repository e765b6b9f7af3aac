"""Realtime on the full local stack: sockets through the edges, fed by each hub's change-feed
tail, resumed with ``since`` in any region (also after a hub dies), refused channels named,
revoked access dropped, a Yjs document kept in sync without polling. Behaviour only: waits are
generous timeouts, never speeds (bench/realtime_bench.py measures)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devstack.secrets import mint_token
from memorybank_client import AsyncMemoryBank
from memorybank_client.realtime import Message

from .conftest import REGIONS, LiveStack

pytestmark = pytest.mark.integration


def ws_url(live: LiveStack, region: str) -> str:
    return live.topology.edges[region].replace("http", "ws", 1) + "/v1/realtime"


@contextlib.asynccontextmanager
async def socket(live: LiveStack, sub: str, region: str = "ams", tier: str = "internal",
                 **subscribe: Any) -> Any:
    async with connect(ws_url(live, region), additional_headers=live.auth(sub, tier=tier)) as ws:
        if subscribe:
            await ws.send(msgspec.json.encode({"op": "subscribe", **subscribe}).decode())
        yield ws


async def frame(ws: ClientConnection, wait_s: float = 10) -> dict[str, Any]:
    """The next frame that is not a ping."""
    while True:
        got = msgspec.json.decode(await asyncio.wait_for(ws.recv(), wait_s))
        if got.get("op") != "ping":
            return got


async def created(live: LiveStack, http: httpx.AsyncClient, sub: str,
                  profile: dict[str, Any] | None = None) -> tuple[str, str]:
    """A new twin (through the ams edge) and the consistency token of its creation."""
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins", headers=live.auth(sub),
                        json={"profile": profile or {"n": 0}})
    assert r.status_code == 201, r.text
    return str(r.json()["twin_id"]), r.headers["x-consistency-token"]


async def new_twin(live: LiveStack, http: httpx.AsyncClient, sub: str,
                   profile: dict[str, Any] | None = None) -> str:
    return (await created(live, http, sub, profile))[0]


async def patch(live: LiveStack, http: httpx.AsyncClient, sub: str, twin: str,
                body: dict[str, Any], region: str = "ams") -> httpx.Response:
    r = await http.patch(f"{live.topology.edges[region]}/v1/twins/{twin}", json=body,
                         headers={**live.auth(sub), "content-type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    return r


async def test_a_change_arrives_with_a_token_that_reads_it_at_that_hub(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"rt-token-{uuid.uuid4().hex[:8]}"
    twin, token = await created(live, http, sub)
    # Subscribing with the creation's token: the hub starts once its replica (and its feed
    # tail) show the twin, so the creation is not announced again and the next change is ours.
    async with socket(live, sub, "iad", channels=[f"twin:{twin}"],
                      consistency_token=token) as ws:
        hub = (await frame(ws))["hub"]
        written = await patch(live, http, sub, twin, {"n": 1})  # written through ams
        got = await frame(ws)
    assert got["channel"] == f"twin:{twin}" and got["event"] == "twin"
    assert got["data"] == {"twin_id": twin, "version": written.json()["version"]}
    assert got["consistency_token"] >= written.headers["x-consistency-token"]
    # Read at the hub that announced it, with the token it announced: the data is there.
    r = await http.get(f"{live.topology.edges['iad']}/v1/twins/{twin}",
                       headers={**live.auth(sub), "x-consistency-token": got["consistency_token"]})
    assert r.status_code == 200 and r.json()["profile"]["n"] == 1
    assert r.headers["x-served-by"].endswith(f"hub={hub}")


async def test_unknown_and_unreadable_channels_are_refused_by_name(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    owner, other = (f"rt-refuse-{x}-{uuid.uuid4().hex[:6]}" for x in "ab")
    twin = await new_twin(live, http, owner)
    async with socket(live, other, "ams", tier="pro",
                      channels=[f"twin:{twin}", "bogus:1", "global"]) as ws:
        refused = [await frame(ws), await frame(ws)]
        done = await frame(ws)
    assert {(f["op"], f["channel"], f["status"]) for f in refused} == {
        ("error", "bogus:1", 404), ("error", f"twin:{twin}", 403)}
    assert done == {**done, "op": "subscribed", "channels": ["global"]}


async def test_revoking_a_grant_drops_the_channel(live: LiveStack, http: httpx.AsyncClient) -> None:
    owner, reader = (f"rt-revoke-{x}-{uuid.uuid4().hex[:6]}" for x in "ab")
    twin = await new_twin(live, http, owner)
    edge = live.topology.edges["ams"]
    r = await http.post(f"{edge}/v1/twins/{twin}/grants", headers=live.auth(owner),
                        json={"sub": reader, "access": "read"})
    assert r.status_code in (200, 201), r.text
    token = r.headers["x-consistency-token"]
    async with socket(live, reader, "sin", tier="pro") as ws:
        # The reader's hub must show the grant before it checks the channel: wait on the token.
        await http.get(f"{live.topology.edges['sin']}/v1/twins/{twin}",
                       headers={**live.auth(reader, tier="pro"), "x-consistency-token": token})
        await ws.send(msgspec.json.encode({"op": "subscribe",
                                           "channels": [f"twin:{twin}"]}).decode())
        assert (await frame(ws))["op"] == "subscribed"
        r = await http.delete(f"{edge}/v1/twins/{twin}/grants/{reader}", headers=live.auth(owner))
        assert r.status_code in (200, 204), r.text
        dropped = await frame(ws)
        assert dropped["op"] == "error" and dropped["channel"] == f"twin:{twin}"
        assert "revoked" in dropped["detail"]
        await patch(live, http, owner, twin, {"after": True})
        with pytest.raises(TimeoutError):
            await frame(ws, wait_s=1.0)


async def test_a_yjs_document_stays_in_sync_without_polling(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"rt-yjs-{uuid.uuid4().hex[:8]}"
    twin, token = await created(live, http, sub, {"title": "draft"})
    doc: Doc[Any] = Doc()
    async with socket(live, sub, "iad", channels=[f"twin:{twin}"], yjs=True,
                      consistency_token=token) as ws:
        first = await frame(ws)
        assert first["event"] == "sync"
        doc.apply_update(base64.b64decode(first["data"]["update"]))
        assert (await frame(ws))["op"] == "subscribed"
        for i in range(3):
            await patch(live, http, sub, twin, {"title": f"edit {i}", f"k{i}": i}, region="sin")
            got = await frame(ws)
            assert got["event"] == "twin"
            doc.apply_update(base64.b64decode(got["data"]["update"]))
    profile = doc.get("profile", type=Map).to_py()
    assert profile == {"title": "edit 2", "k0": 0, "k1": 1, "k2": 2}


# Resume: a reference run records every message of a burst of writes; then any cut point
# (and any region to resume in) must give the same sequence, nothing lost, nothing twice.

async def _burst(live: LiveStack, sub: str, twin: str, count: int) -> list[tuple[int, int]]:
    """Writes ``count`` patches while a subscriber reads them; (seq, version) in order."""
    seen: list[tuple[int, int]] = []
    async with httpx.AsyncClient(timeout=15) as http:
        async with socket(live, sub, "ams", channels=[f"twin:{twin}"]) as ws:
            assert (await frame(ws))["op"] == "subscribed"
            for i in range(count):
                await patch(live, http, sub, twin, {"i": i}, region=REGIONS[i % 3])
            while len(seen) < count:
                got = await frame(ws)
                seen.append((got["seq"], got["data"]["version"]))
    return seen


async def _resumed(live: LiveStack, sub: str, twin: str, since: int, cut: int, total: int,
                   regions: tuple[str, str]) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    async with socket(live, sub, regions[0], channels=[f"twin:{twin}"], since=since) as ws:
        while len(seen) < cut:
            got = await frame(ws)
            if "seq" in got and "channel" in got:
                seen.append((got["seq"], got["data"]["version"]))
    last = seen[-1][0] if seen else since
    async with socket(live, sub, regions[1], channels=[f"twin:{twin}"], since=last) as ws:
        while len(seen) < total:
            got = await frame(ws)
            if "channel" in got:
                seen.append((got["seq"], got["data"]["version"]))
    return seen


def test_resuming_anywhere_after_any_disconnect_point_misses_nothing(live: LiveStack) -> None:
    sub = f"rt-resume-{uuid.uuid4().hex[:8]}"
    loop = asyncio.new_event_loop()
    try:
        async def setup() -> tuple[str, list[tuple[int, int]]]:
            async with httpx.AsyncClient(timeout=15) as http:
                twin = await new_twin(live, http, sub)
            return twin, await _burst(live, sub, twin, 8)

        twin, reference = loop.run_until_complete(setup())
        since = reference[0][0] - 1

        @settings(max_examples=10, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(cut=st.integers(0, len(reference)),
               regions=st.tuples(st.sampled_from(REGIONS), st.sampled_from(REGIONS)))
        def resume(cut: int, regions: tuple[str, str]) -> None:
            got = loop.run_until_complete(
                _resumed(live, sub, twin, since, cut, len(reference), regions))
            assert got == reference

        resume()
    finally:
        loop.close()


async def test_a_hub_kill_then_resume_elsewhere_loses_nothing(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"rt-kill-{uuid.uuid4().hex[:8]}"
    twin = await new_twin(live, http, sub)
    received: list[Message] = []
    async with AsyncMemoryBank(live.topology.edges["ams"], live.token(sub)) as mb:
        async def follow() -> None:
            async for message in mb.subscribe([f"twin:{twin}"]):
                received.append(message)

        follower = asyncio.create_task(follow())
        try:
            await asyncio.sleep(1.0)  # subscribed at hub-ams (the ams edge's nearest)
            versions = [(await patch(live, http, sub, twin, {"i": i}, "iad")).json()["version"]
                        for i in range(3)]
            await _until(lambda: len(received) >= 3)
            live.stack.stop_process("hub-ams")
            try:
                versions += [(await patch(live, http, sub, twin, {"i": i}, "iad")).json()[
                    "version"] for i in range(3, 6)]
                await _until(lambda: len(received) >= 6, wait_s=30)
            finally:
                live.stack.start_process("hub-ams")
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    assert [m.data["version"] for m in received] == versions
    seqs = [m.seq for m in received]
    assert seqs == sorted(set(seqs))


async def _until(check: Any, wait_s: float = 15) -> None:
    for _ in range(int(wait_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {wait_s}s")


# Issue 29 item 5: a channel name the database cannot take used to close the socket (1011).

async def test_a_nul_in_a_channel_name_is_an_error_frame_and_the_socket_stays(
    live: LiveStack,
) -> None:
    sub = f"rt-nul-{uuid.uuid4().hex[:8]}"
    async with socket(live, sub, "ams", channels=["twin:a\x00b", "twin:ok\x07"]) as ws:
        refused = [await frame(ws), await frame(ws)]
        assert [(f["op"], f["channel"], f["status"]) for f in refused] == [
            ("error", "twin:a\x00b", 400), ("error", "twin:ok\x07", 400)]
        assert (await frame(ws))["op"] == "subscribed"
        await ws.send(msgspec.json.encode({"op": "subscribe", "channels": ["global"]}).decode())
        assert (await frame(ws))["channels"] == ["global"]


# Item 3: socket ops are metered against the caller's fleet limit, connections counted fleet-wide.

async def test_a_free_callers_subscribes_past_its_limit_get_a_429_frame_on_an_open_socket(
    live: LiveStack,
) -> None:
    sub = f"rt-meter-{uuid.uuid4().hex[:8]}"
    async with socket(live, sub, "ams", tier="free") as ws:
        for _ in range(10):  # free: 10 requests a minute across the fleet
            await ws.send(msgspec.json.encode({"op": "subscribe", "channels": ["global"],
                                               "since": 0}).decode())
            got = await frame(ws)
            while got.get("op") not in ("subscribed", "error"):  # replayed rows, or a gap
                got = await frame(ws)
            assert got["op"] == "subscribed", got
        await ws.send(msgspec.json.encode({"op": "subscribe", "channels": ["global"],
                                           "since": 0}).decode())
        refused = await frame(ws)
        assert refused["op"] == "error" and refused["status"] == 429, refused
        assert refused["retry_after"] >= 1
        await ws.send("not an op")  # the socket is still open and answering
        assert (await frame(ws))["op"] == "error"


async def _refused(live: LiveStack, sub: str, region: str) -> int:
    """The status or close code refusing one more socket (429 / 4429), 0 if it opened."""
    try:
        async with socket(live, sub, region, tier="free") as ws:
            await ws.send("not an op")
            await frame(ws)
            return 0
    except InvalidStatus as exc:
        return exc.response.status_code
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006


async def test_a_free_caller_holds_at_most_five_sockets_across_regions(live: LiveStack) -> None:
    sub = f"rt-slots-{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as held:
        for region in ("ams", "ams", "ams", "iad", "iad"):
            await held.enter_async_context(socket(live, sub, region, tier="free"))
        assert await _refused(live, sub, "iad") in (429, 4429)
        assert await _refused(live, sub, "sin") in (429, 4429)
    # All closed: their slots are free again, released by each hub once it sees its socket
    # end (a moment after the client's close), not left to lapse (35 s).
    deadline = time.monotonic() + 5
    while (code := await _refused(live, sub, "sin")) != 0:
        assert time.monotonic() < deadline, f"the slots were not released: {code}"
        await asyncio.sleep(0.2)


# Item 2: a socket lives as long as its token (exp + the edge's leeway), unless renewed.

def _expiring(live: LiveStack, sub: str, left_s: float, tier: str = "internal") -> str:
    """A token the edge still accepts (within its 30 s leeway) for about ``left_s`` seconds."""
    return mint_token(live.secrets.jwt_hs256_secret, sub, tier=tier, ttl=60,
                      now=time.time() - 60 - 30 + left_s)


async def test_a_socket_closes_with_4401_once_its_token_expires(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"rt-exp-{uuid.uuid4().hex[:8]}"
    token = _expiring(live, sub, 4)
    async with connect(ws_url(live, "ams"),
                       additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(msgspec.json.encode({"op": "subscribe", "channels": ["global"]}).decode())
        subscribed = await frame(ws)
        assert subscribed["expires_at"] <= time.time() + 4
        with pytest.raises(ConnectionClosed) as closed:
            await frame(ws, wait_s=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason.startswith("token-expired")
    r = await http.get(f"{live.topology.edges['ams']}/v1/regions",
                       headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401  # the same verdict HTTP gives


async def test_a_fresh_token_on_the_socket_keeps_it_open_past_the_old_deadline(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"rt-renew-{uuid.uuid4().hex[:8]}"
    twin = await new_twin(live, http, sub)
    old = _expiring(live, sub, 4)
    async with connect(ws_url(live, "ams"),
                       additional_headers={"Authorization": f"Bearer {old}"}) as ws:
        await ws.send(msgspec.json.encode({"op": "subscribe",
                                           "channels": [f"twin:{twin}"]}).decode())
        deadline = (await frame(ws))["expires_at"]
        await ws.send(msgspec.json.encode({"op": "auth", "token": "not.a.jwt"}).decode())
        assert (await frame(ws))["status"] == 401  # refused; the socket keeps its deadline
        await ws.send(msgspec.json.encode({"op": "auth", "token": live.token(sub)}).decode())
        renewed = await frame(ws)
        assert renewed["op"] == "authed" and renewed["expires_at"] > deadline + 3000
        await asyncio.sleep(max(0.0, deadline + 2 - time.time()))  # past the old deadline
        written = await patch(live, http, sub, twin, {"after": "deadline"})
        got = await frame(ws)
        assert got["data"]["version"] == written.json()["version"]


async def test_a_token_for_another_caller_closes_the_socket_with_4403(live: LiveStack) -> None:
    sub = f"rt-swap-{uuid.uuid4().hex[:8]}"
    async with socket(live, sub, "ams") as ws:
        await ws.send(msgspec.json.encode({"op": "auth",
                                           "token": live.token(sub + "-other")}).decode())
        with pytest.raises(ConnectionClosed) as closed:
            await frame(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_the_sdk_renews_with_its_token_provider_and_raises_4401_without_one(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    from memorybank_client.realtime import RealtimeClosed

    sub = f"rt-sdk-renew-{uuid.uuid4().hex[:8]}"
    twin = await new_twin(live, http, sub)
    received: list[Message] = []
    asked: list[str] = []

    def provider() -> str:
        asked.append(sub)
        return live.token(sub)

    async with AsyncMemoryBank(live.topology.edges["ams"], _expiring(live, sub, 4)) as mb:
        deadline = time.time() + 4

        async def follow() -> None:
            async for message in mb.subscribe([f"twin:{twin}"], token_provider=provider):
                received.append(message)

        follower = asyncio.create_task(follow())
        try:
            await _until(lambda: bool(asked))  # renewed on the socket before the deadline
            await asyncio.sleep(max(0.0, deadline + 2 - time.time()))
            written = await patch(live, http, sub, twin, {"renewed": True})
            await _until(lambda: bool(received))
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        assert [m.data["version"] for m in received] == [written.json()["version"]]

    async with AsyncMemoryBank(live.topology.edges["ams"], _expiring(live, sub, 3)) as mb:
        with pytest.raises(RealtimeClosed) as closed:
            async for _ in mb.subscribe([f"twin:{twin}"]):
                pass
    assert closed.value.code == 4401 and "token-expired" in str(closed.value)
