"""The hub's Yjs endpoint without sockets or databases (a fake replica and central): the upgrade's
checks, the sync handshake, writes forwarded only when new, each refusal's answer, the fan-out of
the feed's rows (log rows, or a diff once compacted), revoked access, and awareness between two
providers of one worker with the removal when one leaves."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pycrdt
from pycrdt import Awareness, Doc, Map, handle_sync_message

from mbwire import ConsistencyToken, HopSigner, Principal
from mbwire.socket_auth import with_until
from regional.admission import FleetAdmission
from regional.central_client import Forwarded
from regional.realtime import Broker
from regional.realtime.feed import Row
from regional.replica import TwinAccess
from regional.yjs import Rooms, Writes, protocol, yjs_endpoint
from tests.unit.regional.test_realtime_socket import Limiter, settle

SECRET = "y" * 32
OWNER = Principal(sub="yjs-owner", tier="pro")
READER = Principal(sub="yjs-reader", tier="pro")
STRANGER = Principal(sub="yjs-stranger", tier="pro")


@dataclass
class Twin:
    owner: str
    doc: Doc[Any]
    grants: dict[str, str] = field(default_factory=dict)
    version: int = 1
    log: list[tuple[int, bytes]] = field(default_factory=list)
    compacted: int = 1


class FakeReplica:
    def __init__(self) -> None:
        self.twins: dict[str, Twin] = {}
        self.reads = 0

    async def twin_state(self, twin_id: str) -> tuple[bytes, TwinAccess] | None:
        self.reads += 1
        twin = self.twins.get(twin_id)
        if twin is None:
            return None
        return twin.doc.get_update(), TwinAccess(twin_id, twin.owner, twin.version,
                                                 dict(twin.grants))

    async def twin_log_after(self, twin_id: str, after: int, limit: int = 512,
                             ) -> list[tuple[int, bytes]]:
        twin = self.twins[twin_id]
        return [(v, u) for v, u in twin.log if v > max(after, twin.compacted)][:limit]


class FakeCentral:
    """Merges like central (no log compaction unless asked), or answers ``refuse``."""

    def __init__(self, replica: FakeReplica) -> None:
        self.replica, self.calls = replica, list[tuple[str, bytes]]()
        self.refuse: tuple[int, dict[str, Any]] | None = None

    async def forward(self, method: str, path: str, *, principal: Principal | None,
                      request_id: str, body: bytes = b"", **_: Any) -> Forwarded:
        assert method == "POST" and principal is not None
        self.calls.append((path, body))
        if self.refuse is not None:
            status, problem = self.refuse
            return Forwarded(status, msgspec.json.encode(problem), {})
        twin = self.replica.twins[path.split("/")[3]]
        before = twin.doc.get_state()
        twin.doc.apply_update(body)
        if twin.doc.get_state() != before:
            twin.version += 1
            twin.log.append((twin.version, pycrdt.get_update(body, before)))
        return Forwarded(200, msgspec.json.encode({"version": twin.version}), {})


def profile_doc(**values: Any) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    profile = doc.get("profile", type=Map)
    for key, value in values.items():
        profile[key] = value
    return doc


def make() -> tuple[Any, FakeReplica, FakeCentral, Rooms]:
    replica, broker = FakeReplica(), Broker(None, limits={"pro": 10},  # type: ignore[arg-type]
                                            max_connections=10)
    replica.twins["t1"] = Twin(OWNER.sub, profile_doc(name="ada"), grants={READER.sub: "read"})
    central = FakeCentral(replica)
    rooms = Rooms(replica)  # type: ignore[arg-type]
    admission = FleetAdmission(Limiter(1000))  # type: ignore[arg-type]
    writes = Writes(central, admission, resync=rooms.resync)  # type: ignore[arg-type]

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the next app saw the upgrade")

    app = yjs_endpoint(never_called, signer=HopSigner(SECRET), broker=broker, rooms=rooms,
                       writes=writes, admission=admission, clock=None,  # type: ignore[arg-type]
                       ping_s=5)
    return app, replica, central, rooms


class Provider:
    """A y-websocket provider over the ASGI interface: a pycrdt doc and awareness."""

    def __init__(self, app: Any, principal: Principal | None = OWNER, twin: str = "t1",
                 signed: bool = True) -> None:
        path = f"/v1/yjs/{twin}"
        query = with_until("", int(time.time() + 3600))
        headers = {"x-request-id": "r1"}
        if signed:
            headers |= HopSigner(SECRET).sign("GET", path, principal, "r1", query=query)
        self.doc: Doc[Any] = Doc()
        self.doc.get("profile", type=Map)
        self.awareness = Awareness(self.doc)
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.sent: list[dict[str, Any]] = []
        self.scope = {"type": "websocket", "path": path, "raw_path": path.encode(),
                      "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                      "query_string": query.encode(),
                      "extensions": {"websocket.http.response": {}}}
        self.task = asyncio.ensure_future(app(self.scope, self.incoming.get, self.send))
        self.seen = 0

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.send":
            reply = self.apply(message["bytes"])
            if reply is not None:
                self.put(reply)

    def apply(self, frame: bytes) -> bytes | None:
        """What y-websocket does with a message from the hub (and its reply, if any)."""
        message = protocol.parse(frame)
        if message.kind == protocol.SYNC:
            return handle_sync_message(frame[1:], self.doc)
        if message.kind == protocol.AWARENESS:
            self.awareness.apply_awareness_update(message.payload, "hub")
        return None

    def put(self, frame: bytes) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "bytes": frame})

    def connect(self) -> None:
        """What y-websocket sends once open: SyncStep1, then its awareness."""
        self.put(protocol.sync_step1(self.doc.get_state()))

    def edit(self, **values: Any) -> None:
        before = self.doc.get_state()
        profile = self.doc.get("profile", type=Map)
        for key, value in values.items():
            profile[key] = value
        self.put(protocol.update(self.doc.get_update(before)))

    def announce(self, **fields: Any) -> None:
        self.awareness.set_local_state(fields)
        self.put(protocol.awareness(
            self.awareness.encode_awareness_update([self.doc.client_id])))

    @property
    def profile(self) -> dict[str, Any]:
        return self.doc.get("profile", type=Map).to_py() or {}

    def messages(self, kind: int) -> list[bytes]:
        return [m["bytes"] for m in self.sent if m["type"] == "websocket.send"
                and protocol.parse(m["bytes"]).kind == kind]

    async def leave(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 2)

    async def closed(self) -> dict[str, Any]:
        await asyncio.wait_for(self.task, 5)
        return self.sent[-1]


async def test_an_unsigned_upgrade_is_a_401_and_a_bad_twin_id_a_422() -> None:
    app, _, _, _ = make()
    unsigned = Provider(app, signed=False)
    await asyncio.wait_for(unsigned.task, 2)
    assert unsigned.sent[0]["status"] == 401
    bad = Provider(app, twin="-nope")
    await asyncio.wait_for(bad.task, 2)
    assert bad.sent[0]["status"] == 422


async def test_a_stranger_is_refused_403_and_a_missing_twin_404() -> None:
    app, _, _, rooms = make()
    stranger = Provider(app, STRANGER)
    await asyncio.wait_for(stranger.task, 2)
    assert stranger.sent[0]["status"] == 403
    missing = Provider(app, OWNER, twin="t2")
    await asyncio.wait_for(missing.task, 2)
    assert missing.sent[0]["status"] == 404
    assert not rooms.rooms


async def test_the_handshake_syncs_and_nothing_new_is_not_written() -> None:
    app, replica, central, rooms = make()
    provider = Provider(app)
    provider.connect()
    await settle()
    assert provider.sent[0] == {"type": "websocket.accept", "subprotocol": None}
    assert provider.profile == {"name": "ada"}
    assert central.calls == []  # its SyncStep2 answer to ours held nothing new
    assert replica.reads == 1  # the upgrade's read answered its SyncStep1
    provider.edit(city="Amsterdam")
    await settle()
    assert central.calls == [("/v1/twins/t1/updates", central.calls[0][1])]
    assert replica.twins["t1"].doc.get("profile", type=Map).to_py() == {
        "name": "ada", "city": "Amsterdam"}
    await provider.leave()
    assert not rooms.rooms


async def test_a_change_reaches_another_provider_through_the_feed_and_log() -> None:
    app, replica, _, rooms = make()
    writer, other = Provider(app), Provider(app, READER)
    writer.connect()
    other.connect()
    await settle()
    writer.edit(city="Amsterdam")
    await settle()
    assert "city" not in other.profile  # not before the feed says it is committed
    await rooms.publish([Row(10, "twin", "t1", 2)], ConsistencyToken(1))
    await settle()
    assert other.profile == {"name": "ada", "city": "Amsterdam"}
    # Compacted past what a provider has: it is sent the diff of the state instead.
    twin = replica.twins["t1"]
    before = twin.doc.get_state()
    twin.doc.get("profile", type=Map)["n"] = 1
    twin.version, twin.compacted = 3, 3
    twin.log.append((3, twin.doc.get_update(before)))
    await rooms.publish([Row(11, "twin", "t1", 3)], ConsistencyToken(2))
    await settle()
    assert other.profile == {"name": "ada", "city": "Amsterdam", "n": 1}
    await writer.leave()
    await other.leave()


async def test_a_readers_update_is_refused_with_permission_denied_and_the_socket_stays() -> None:
    app, replica, central, _ = make()
    reader = Provider(app, READER)
    reader.connect()
    await settle()
    assert central.calls == []  # syncing is not writing
    central.refuse = (403, {"status": 403, "detail": "yjs-reader may not write twin t1"})
    reader.edit(vandal=True)
    await settle()
    [denied] = reader.messages(protocol.AUTH)
    assert b"may not write" in denied and not reader.task.done()
    assert replica.twins["t1"].version == 1
    await reader.leave()


async def test_sync_first_sends_step1_again_and_too_large_closes_4413() -> None:
    app, _, central, _ = make()
    provider = Provider(app)
    provider.connect()
    await settle()
    step1s = len([m for m in provider.messages(protocol.SYNC) if m[1] == protocol.STEP1])
    central.refuse = (409, {"status": 409, "reason": "sync-first", "detail": "sync first"})
    provider.edit(a=1)
    await settle()
    assert len([m for m in provider.messages(protocol.SYNC)
                if m[1] == protocol.STEP1]) == step1s + 1
    central.refuse = (413, {"status": 413, "reason": "twin-too-large", "limit_bytes": 262144})
    provider.edit(b=2)
    closed = await provider.closed()
    assert closed["code"] == 4413 and "262144" in closed["reason"]


async def test_revoking_read_access_closes_4403() -> None:
    app, replica, _, rooms = make()
    reader = Provider(app, READER)
    reader.connect()
    await settle()
    del replica.twins["t1"].grants[READER.sub]
    await rooms.publish([Row(12, "grant", "t1", None)], ConsistencyToken(3))
    closed = await reader.closed()
    assert closed["code"] == 4403


async def test_awareness_reaches_the_other_provider_and_leaving_removes_it() -> None:
    app, _, central, rooms = make()
    ada, bob = Provider(app), Provider(app, READER)
    ada.connect()
    bob.connect()
    await settle()
    ada.announce(user="ada")
    await settle()
    assert bob.awareness.states[ada.doc.client_id] == {"user": "ada"}
    late = Provider(app, READER)  # told who is there when it joins
    late.connect()
    await settle()
    assert late.awareness.states[ada.doc.client_id] == {"user": "ada"}
    await ada.leave()
    await settle()
    assert ada.doc.client_id not in bob.awareness.states
    assert ada.doc.client_id not in late.awareness.states
    assert central.calls == []  # awareness is never a write
    await bob.leave()
    await late.leave()
    assert not rooms.rooms
