"""The hubs' Yjs endpoint (``/v1/yjs/{twin_id}``, regional/yjs/) on the full local stack, reached
straight at the hubs with an edge's signed upgrade (the edge's side: test_yjs_edge.py; the stock
Node provider through the edges: test_yjs_provider.py). A small provider written here with
pycrdt (a Doc, y-protocols messages, an Awareness) syncs the stored twin; its edit at ams
reaches a provider at sin and HTTP readers; an HTTP patch reaches a provider; presence set at
ams is seen at sin and goes when that provider leaves; a stranger and an unsigned upgrade are
refused; a reader syncs, and its update is refused with nothing stored. Behaviour only: waits
are generous timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    Map,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from mbwire import HopSigner, Principal
from mbwire.socket_auth import with_until

from .conftest import LiveStack

pytestmark = pytest.mark.integration


class YProvider:
    """What y-websocket does, in Python: sync steps, updates, awareness, auth messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Any] = Doc()
        self.doc.get("profile", type=Map)
        self.awareness = Awareness(self.doc)
        self.synced = asyncio.Event()
        self.denied: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            assert isinstance(frame, bytes), frame  # y-websocket frames are binary
            if frame[0] == YMessageType.SYNC:
                reply = handle_sync_message(frame[1:], self.doc)
                if reply is not None:
                    await self.ws.send(reply)
                if frame[1] == YSyncMessageType.SYNC_STEP2:
                    self.synced.set()
            elif frame[0] == YMessageType.AWARENESS:
                self.awareness.apply_awareness_update(read_message(frame[1:]), "hub")
            elif frame[0] == 2:  # auth: permission denied
                self.denied.append(Decoder(frame[2:]).read_var_string())
            self.changed.set()

    async def start(self) -> None:
        await self.ws.send(create_sync_message(self.doc))
        await asyncio.wait_for(self.synced.wait(), 10)

    async def edit(self, **values: Any) -> None:
        before = self.doc.get_state()
        profile = self.doc.get("profile", type=Map)
        with self.doc.transaction():
            for key, value in values.items():
                profile[key] = value
        await self.ws.send(create_update_message(self.doc.get_update(before)))

    async def announce(self, state: dict[str, Any]) -> None:
        self.awareness.set_local_state(state)
        await self.ws.send(create_awareness_message(
            self.awareness.encode_awareness_update([self.doc.client_id])))

    @property
    def profile(self) -> dict[str, Any]:
        return self.doc.get("profile", type=Map).to_py() or {}

    async def until(self, check: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            left = deadline - time.monotonic()
            assert left > 0, f"not within {within} s"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


def hub_url(live: LiveStack, region: str, path: str, query: str) -> str:
    return live.topology.hubs[region].replace("http", "ws", 1) + f"{path}?{query}"


def signed(live: LiveStack, path: str, sub: str | None, *, tier: str = "pro",
           extra: str = "") -> tuple[str, dict[str, str]]:
    """The query and headers an edge sends a hub for an upgrade by ``sub`` (an hour's token)."""
    rid = f"yjs-hub-{uuid.uuid4().hex[:12]}"
    query = with_until(extra, int(time.time()) + 3600)
    principal = None if sub is None else Principal(sub=sub, tier=tier)  # type: ignore[arg-type]
    headers = HopSigner(live.secrets.edge_hop_secret).sign("GET", path, principal, rid,
                                                          query=query)
    return query, {**headers, "x-request-id": rid}


@contextlib.asynccontextmanager
async def provider(live: LiveStack, region: str, twin: str, sub: str,
                   token: str | None = None) -> AsyncIterator[YProvider]:
    """A synced provider at ``region``'s hub (``token``: wait for the hub's replica first)."""
    path = f"/v1/yjs/{twin}"
    query, headers = signed(live, path, sub, extra=f"consistency_token={token}" if token else "")
    async with connect(hub_url(live, region, path, query), additional_headers=headers,
                       open_timeout=15) as ws:
        one = YProvider(ws)
        try:
            await one.start()
            yield one
        finally:
            one.reader.cancel()
            with contextlib.suppress(BaseException):
                await one.reader


async def created(live: LiveStack, http: httpx.AsyncClient, sub: str,
                  profile: dict[str, Any]) -> tuple[str, str]:
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins",
                        headers=live.auth(sub, tier="pro"), json={"profile": profile})
    assert r.status_code == 201, r.text
    return str(r.json()["twin_id"]), r.headers["x-consistency-token"]


async def read(live: LiveStack, http: httpx.AsyncClient, sub: str, twin: str,
               region: str) -> dict[str, Any]:
    r = await http.get(f"{live.topology.edges[region]}/v1/twins/{twin}",
                       headers=live.auth(sub, tier="pro"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.1)


def refusal(exc: pytest.ExceptionInfo[InvalidStatus]) -> int:
    return exc.value.response.status_code


async def test_providers_in_two_regions_sync_edit_and_see_http_writes(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"yjs-hub-{uuid.uuid4().hex[:8]}"
    twin, token = await created(live, http, sub, {"name": "Ada", "address": {"city": "London"}})
    async with (provider(live, "ams", twin, sub, token) as ams,
                provider(live, "sin", twin, sub, token) as sin):
        stored = (await read(live, http, sub, twin, "ams"))["profile"]
        assert ams.profile == sin.profile == stored  # the initial state is the stored twin
        await ams.edit(from_ams=1)
        await sin.until(lambda: sin.profile.get("from_ams") == 1)

        async def sin_reads_it() -> bool:
            return (await read(live, http, sub, twin, "sin"))["profile"].get("from_ams") == 1
        await eventually(sin_reads_it)  # every HTTP reader too, in another region

        r = await http.patch(f"{live.topology.edges['iad']}/v1/twins/{twin}",
                             json={"address": {"city": "Paris"}},
                             headers={**live.auth(sub, tier="pro"),
                                      "content-type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        for one in (ams, sin):
            await one.until(lambda one=one: one.profile["address"] == {"city": "Paris"})
        version = r.json()["version"]
    assert (await read(live, http, sub, twin, "iad"))["version"] == version


async def test_presence_crosses_regions_is_never_stored_and_goes_when_its_provider_leaves(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"yjs-aware-{uuid.uuid4().hex[:8]}"
    twin, token = await created(live, http, sub, {"n": 1})
    async with provider(live, "sin", twin, sub, token) as sin:
        async with provider(live, "ams", twin, sub, token) as ams:
            await ams.announce({"user": "ada", "cursor": 3})
            await sin.until(lambda: sin.awareness.states.get(ams.doc.client_id)
                            == {"user": "ada", "cursor": 3})
            await sin.announce({"user": "grace"})
            await ams.until(lambda: sin.doc.client_id in ams.awareness.states)
            leaving = ams.doc.client_id
        # The ams socket closed without a word: the hub says its client is gone.
        await sin.until(lambda: leaving not in sin.awareness.states)
    twin_now = await read(live, http, sub, twin, "ams")
    assert twin_now["version"] == 1 and twin_now["profile"] == {"n": 1}


async def test_a_reader_syncs_but_its_update_is_refused_and_nothing_is_stored(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    owner, reader = (f"yjs-{x}-{uuid.uuid4().hex[:8]}" for x in ("owner", "reader"))
    twin, _ = await created(live, http, owner, {"secret": "kept"})
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins/{twin}/grants",
                        json={"sub": reader, "access": "read"},
                        headers=live.auth(owner, tier="pro"))
    assert r.status_code in (200, 201), r.text
    async with provider(live, "sin", twin, reader, r.headers["x-consistency-token"]) as one:
        assert one.profile == {"secret": "kept"}
        assert one.denied == []  # syncing is not writing
        await one.edit(secret="overwritten")
        await one.until(lambda: bool(one.denied))
        assert "may not write" in one.denied[0]
        await one.edit(again=True)  # the socket stays: it keeps syncing, and is refused again
        await one.until(lambda: len(one.denied) == 2)
    await asyncio.sleep(0.5)
    stored = await read(live, http, owner, twin, "ams")
    assert stored["version"] == 1 and stored["profile"] == {"secret": "kept"}


async def test_a_stranger_and_an_unsigned_upgrade_are_refused(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    owner, stranger = (f"yjs-{x}-{uuid.uuid4().hex[:8]}" for x in ("owner", "stranger"))
    twin, token = await created(live, http, owner, {"secret": "kept"})
    path = f"/v1/yjs/{twin}"
    query, headers = signed(live, path, stranger, extra=f"consistency_token={token}")
    with pytest.raises(InvalidStatus) as exc:
        async with connect(hub_url(live, "ams", path, query), additional_headers=headers):
            pass
    assert refusal(exc) == 403
    with pytest.raises(InvalidStatus) as exc:  # not through an edge: no hop
        async with connect(hub_url(live, "ams", path, with_until("", int(time.time()) + 60))):
            pass
    assert refusal(exc) == 401
    query, headers = signed(live, "/v1/yjs/nobody-has-this", owner)
    with pytest.raises(InvalidStatus) as exc:
        async with connect(hub_url(live, "iad", "/v1/yjs/nobody-has-this", query),
                           additional_headers=headers):
            pass
    assert refusal(exc) == 404
