"""The hub's realtime endpoint and broker without sockets or databases: the hop check at the
upgrade, ops and frames, per-tier connection limits, and back-pressure (a stalled reader is
closed with 4008 while a reader that keeps up receives everything)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from mbwire import ConsistencyToken, HopSigner, Principal
from mbwire.socket_auth import sign_renewal, with_until
from regional.admission import FleetAdmission
from regional.ratelimit import FleetDecision
from regional.realtime import Broker, RealtimeFeed, frames, realtime_endpoint
from regional.realtime.feed import Row

SECRET = "s" * 32
ALICE = Principal(sub="rt-alice", tier="free")


async def never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the app saw the upgrade")


class Limiter:
    """The fleet limiter's answers without Redis: ``limit`` units per sub, never replenished."""

    def __init__(self, limit: int = 10) -> None:
        self.limit, self.used = limit, 0

    async def hit(self, sub: str, tier: str, cost: int = 1, **_: Any) -> FleetDecision:
        if self.used + cost > self.limit:
            return FleetDecision(False, self.limit, 0, 60, 42)
        self.used += cost
        return FleetDecision(True, self.limit, self.limit - self.used, 60, 0)


class Slots:
    """Fleet connection slots without Redis: at most ``cap`` held."""

    def __init__(self, cap: int) -> None:
        self.cap, self.held = cap, set[str]()

    async def acquire(self, principal: Principal, conn_id: str) -> str | None:
        if len(self.held) >= self.cap:
            return f"at most {self.cap} realtime connections across all regions"
        self.held.add(conn_id)
        return None

    async def release(self, principal: Principal, conn_id: str) -> None:
        self.held.discard(conn_id)


def make(queue_max: int = 256, limits: dict[str, int] | None = None, *,
         limiter: Limiter | None = None, slots: Slots | None = None,
         ) -> tuple[Any, Broker, RealtimeFeed]:
    broker = Broker(None, limits=limits or {"free": 2}, max_connections=10,  # type: ignore[arg-type]
                    queue_max=queue_max)
    feed = RealtimeFeed(None, None)  # type: ignore[arg-type]
    feed.cursor, feed.sink = 7, broker.publish
    feed.started.set()
    feed.head = 7  # type: ignore[attr-defined]  # the replica's newest row

    async def bounds() -> tuple[int, int]:
        return 1, feed.head  # type: ignore[attr-defined]

    feed.bounds = bounds  # type: ignore[method-assign]
    admission = FleetAdmission(limiter or Limiter(1000))  # type: ignore[arg-type]
    app = realtime_endpoint(never_called, signer=HopSigner(SECRET), broker=broker, feed=feed,
                            region="ams", ping_s=5, admission=admission, slots=slots)
    return app, broker, feed


def hop(principal: Principal | None = ALICE, until: float | None = None, query: str | None = None,
        ) -> Hop:
    """The edge's hop for an upgrade; ``until``: the token's deadline (an hour by default)."""
    if query is None:
        query = with_until("", int(time.time() + 3600 if until is None else until))
    signed = HopSigner(SECRET).sign("GET", "/v1/realtime", principal, "r1", query=query)
    return Hop([(k.encode(), v.encode()) for k, v in {**signed, "x-request-id": "r1"}.items()],
               query)


class Hop(list[tuple[bytes, bytes]]):
    """Upgrade headers and the query string they were signed with."""

    def __init__(self, headers: list[tuple[bytes, bytes]], query: str = "") -> None:
        super().__init__(headers)
        self.query = query


class Client:
    """Drives one connection: ``ops`` are sent after the handshake; ``frames`` collects."""

    def __init__(self, app: Any, headers: list[tuple[bytes, bytes]], path: str = "/v1/realtime",
                 ) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.sent: list[dict[str, Any]] = []
        self.scope = {"type": "websocket", "path": path, "headers": headers,
                      "query_string": getattr(headers, "query", "").encode(),
                      "extensions": {"websocket.http.response": {}}}
        self.task = asyncio.ensure_future(app(self.scope, self.incoming.get, self.send))
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self.flowing.wait()
        self.sent.append(message)

    def op(self, **op: Any) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": msgspec.json.encode(
            op).decode()})

    def send_raw(self, raw: bytes) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": raw.decode()})

    async def closed(self) -> dict[str, Any]:
        """The close the hub sent, once the connection ended (generous wait)."""
        await asyncio.wait_for(self.task, 10)
        return self.sent[-1]

    def frames(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(m["text"]) for m in self.sent
                if m["type"] == "websocket.send"]

    async def leave(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 2)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_an_upgrade_without_the_edges_hop_is_a_401_problem() -> None:
    app, _, _ = make()
    client = Client(app, [])
    await asyncio.wait_for(client.task, 2)
    assert client.sent[0]["type"] == "websocket.http.response.start"
    assert client.sent[0]["status"] == 401
    assert b"through the edge" in client.sent[1]["body"]


async def test_another_path_is_a_404_problem() -> None:
    app, _, _ = make()
    client = Client(app, hop(), path="/v1/other")
    await asyncio.wait_for(client.task, 2)
    assert client.sent[0]["status"] == 404


async def test_a_subscriber_gets_messages_of_its_channels_with_their_token_and_seq() -> None:
    app, broker, _ = make()
    client = Client(app, hop())
    client.op(op="subscribe", channels=["global", "nope:x"])
    await settle()
    await broker.publish([Row(8, "knowledge", "doc1", 3), Row(9, "wallet", "w", None),
                          Row(10, "knowledge", "doc2", None)], ConsistencyToken(0xAB))
    await settle()
    got = client.frames()
    assert got[0]["op"] == "error" and got[0]["channel"] == "nope:x"
    assert got[1] == {**got[1], "op": "subscribed", "channels": ["global"], "seq": 7,
                      "consistency_token": "L0000000000000000", "hub": "ams"}
    assert got[2] == {"channel": "global", "event": "knowledge", "seq": 8,
                      "consistency_token": "L00000000000000AB",
                      "data": {"doc_id": "doc1", "version": 3, "deleted": False}}
    assert got[3]["seq"] == 10 and got[3]["data"]["deleted"] is True and len(got) == 4
    client.op(op="unsubscribe", channels=["global"])
    await settle()
    await broker.publish([Row(11, "knowledge", "doc3", 1)], ConsistencyToken(0xAC))
    await settle()
    assert len(client.frames()) == 4
    await client.leave()
    assert not broker.connections and not broker.by_channel


async def test_a_bad_op_is_an_error_frame_and_the_socket_stays() -> None:
    app, _, _ = make()
    client = Client(app, hop())
    client.op(op="dance")
    await settle()
    assert client.frames()[0]["op"] == "error" and not client.task.done()
    await client.leave()


async def test_a_state_vector_that_is_not_one_is_refused_before_it_reaches_the_feed() -> None:
    app, broker, _ = make()
    client = Client(app, hop())
    client.op(op="subscribe", channels=["twin:t1"], yjs=True,
              state_vectors={"twin:t1": "//8="})  # base64 of two bytes that decode to nothing
    await settle()
    refused = client.frames()[0]
    assert refused["op"] == "error" and refused["channel"] == "twin:t1"
    assert refused["status"] == 422 and "twin:t1" not in broker.by_channel
    await client.leave()


async def test_a_subscribe_waits_until_the_feed_knows_where_it_stands() -> None:
    app, _, feed = make()
    feed.started.clear()
    feed.cursor = -1  # the tail has not read the feed's head yet: nothing to replay up to
    client = Client(app, hop())
    client.op(op="subscribe", channels=["global"], since=9)
    await settle()
    assert client.frames() == []
    feed.cursor = 7
    feed.started.set()
    await settle()
    assert client.frames()[0]["op"] == "subscribed" and client.frames()[0]["seq"] == 7
    await client.leave()


async def test_a_subscribe_starts_where_the_replica_stands_not_where_the_tail_lags() -> None:
    # The replica already shows rows 8 and 9; the tail has handed on up to 7. Subscribing at 7
    # would announce 8 and 9 again after the client could read them: the subscribe waits for
    # the tail, and the rows the tail then hands on reach nobody twice.
    app, broker, feed = make()
    feed.head = 9  # type: ignore[attr-defined]
    client = Client(app, hop())
    client.op(op="subscribe", channels=["global"])
    await settle()
    assert client.frames() == []
    await feed.hand_on([Row(8, "knowledge", "d8", 1), Row(9, "knowledge", "d9", 1)],
                       ConsistencyToken(0xB0))
    await settle()
    await broker.publish([Row(10, "knowledge", "d10", 1)], ConsistencyToken(0xB1))
    await settle()
    got = client.frames()
    assert got[0]["op"] == "subscribed" and got[0]["seq"] == 9
    assert [f["seq"] for f in got[1:]] == [10]
    await client.leave()


async def test_a_token_that_is_not_one_refuses_the_subscribe_not_the_socket() -> None:
    app, broker, _ = make()
    client = Client(app, hop())
    client.op(op="subscribe", channels=["global"], consistency_token="L00zz")
    await settle()
    refused = client.frames()[0]
    assert refused["op"] == "error" and refused["status"] == 400
    assert "not a token" in refused["detail"] and "global" not in broker.by_channel
    assert not client.task.done()
    await client.leave()


async def test_connections_per_caller_are_limited_by_tier() -> None:
    app, broker, _ = make(limits={"free": 2})
    first, second = Client(app, hop()), Client(app, hop())
    await settle()
    third = Client(app, hop())
    await asyncio.wait_for(third.task, 2)
    assert third.sent[0]["status"] == 429
    await first.leave()
    fourth = Client(app, hop())
    await settle()
    assert not fourth.task.done() and len(broker.connections) == 2
    await second.leave()
    await fourth.leave()


async def test_a_stalled_reader_is_closed_with_4008_while_a_reader_that_keeps_up_gets_all() -> None:
    app, broker, _ = make(queue_max=8, limits={"free": 5})
    slow, fast = Client(app, hop()), Client(app, hop())
    for client in (slow, fast):
        client.op(op="subscribe", channels=["global"])
    await settle()
    slow.flowing.clear()
    for seq in range(8, 108):
        await broker.publish([Row(seq, "knowledge", f"d{seq}", 1)], ConsistencyToken(seq))
        await settle()  # the fast reader's writer runs between publishes
    await settle()
    slow.flowing.set()
    await asyncio.wait_for(slow.task, 2)
    assert slow.sent[-1] == {"type": "websocket.close", "code": frames.CLOSE_SLOW_CONSUMER,
                             "reason": "slow consumer: reconnect with since"}
    seqs = [f["seq"] for f in fast.frames() if "seq" in f and "channel" in f]
    assert seqs == list(range(8, 108))
    await fast.leave()


async def test_hub_shutdown_closes_every_socket_with_1001() -> None:
    app, broker, _ = make()
    client = Client(app, hop())
    await settle()
    broker.close_all(frames.CLOSE_GOING_AWAY)
    await asyncio.wait_for(client.task, 2)
    assert client.sent[-1]["code"] == 1001


async def test_the_tail_does_not_wait_for_a_write_to_hand_on_a_row_its_read_missed() -> None:
    # The replica replayed row 8 between the tail's read (which missed it) and the position read
    # after it: the next step must read again at once, not wait for a replay past that position.
    class Clock:
        position = 0x20

        async def advanced(self) -> None:
            await asyncio.Event().wait()  # no further replay comes

    feed = RealtimeFeed(None, Clock())  # type: ignore[arg-type]
    feed.cursor, got = 7, []
    reads = iter([[], [Row(8, "knowledge", "d", 1)]])

    async def tail() -> tuple[ConsistencyToken, list[Row], list[Any], ConsistencyToken]:
        return ConsistencyToken(0x10), next(reads), [], ConsistencyToken(0x20)

    async def sink(rows: list[Row], _: ConsistencyToken) -> None:
        got.extend(rows)

    feed.tail, feed.sink = tail, sink  # type: ignore[method-assign]
    await asyncio.wait_for(feed.step(), 1)
    await asyncio.wait_for(feed.step(), 1)
    assert [r.seq for r in got] == [8] and feed.cursor == 8


async def test_a_row_not_numbered_yet_is_evicted_at_once_and_sent_once_numbered() -> None:
    # Central's sequencer numbers a committed row a tick later (migration 0011): the worker's
    # near cache must not serve the twin's old view meanwhile; subscribers hear of it numbered.
    class Clock:
        position = 0x20

        async def advanced(self) -> None:
            Clock.position += 0x10

    class Near:
        evicted: list[tuple[list[tuple[str, str]], ConsistencyToken | None]] = []

        def evict(self, changes: Any, upto: ConsistencyToken | None) -> None:
            self.evicted.append((list(changes), upto))

        def clear(self) -> None:
            pass

    feed = RealtimeFeed(None, Clock())  # type: ignore[arg-type]
    feed.cursor, feed.near, got = 7, Near(), []  # type: ignore[assignment]
    tails = iter([
        (ConsistencyToken(0x10), [], [("twin", "t1")], ConsistencyToken(0x20)),
        (ConsistencyToken(0x30), [Row(8, "twin", "t1", 2)], [], ConsistencyToken(0x30)),
    ])

    async def tail() -> Any:
        return next(tails)

    async def sink(rows: list[Row], _: ConsistencyToken) -> None:
        got.extend(rows)

    feed.tail, feed.sink = tail, sink  # type: ignore[method-assign]
    await asyncio.wait_for(feed.step(), 1)
    assert Near.evicted == [([("twin", "t1")], ConsistencyToken(0x10))] and got == []
    assert feed.cursor == 7 and feed.covered == ConsistencyToken(0x10)
    await asyncio.wait_for(feed.step(), 1)
    assert [r.seq for r in got] == [8] and feed.cursor == 8


# Issue 29 item 5: a channel name the database cannot take (a NUL) used to close the socket with
# 1011; it must be an error frame naming the channel, before anything reaches the replica.

async def test_a_control_character_in_a_channel_is_an_error_frame_naming_it() -> None:
    app, broker, _ = make()  # no replica: a twin channel that reached it would fail the socket
    client = Client(app, hop())
    bad = ["twin:a\x00b", "twin:line\nbreak", "twin:" + "x" * 300, "twin:"]
    client.op(op="subscribe", channels=[*bad, "global"])
    await settle()
    got = client.frames()
    refused = [f for f in got if f["op"] == "error"]
    assert [f["channel"] for f in refused] == bad and {f["status"] for f in refused} == {400}
    assert got[-1]["op"] == "subscribed" and got[-1]["channels"] == ["global"]
    assert not client.task.done() and set(broker.by_channel) == {"global"}
    await client.leave()


# Item 3: socket ops that read are charged to the caller's fleet limit.

async def test_a_subscribe_over_the_fleet_limit_is_a_429_frame_and_the_socket_stays() -> None:
    app, broker, feed = make(limiter=Limiter(10))

    async def read(since: int, *_: Any) -> tuple[ConsistencyToken, list[Row], ConsistencyToken]:
        return ConsistencyToken(1), [Row(since + 1, "knowledge", "d", 1)], ConsistencyToken(2)

    feed.read = read  # type: ignore[method-assign]
    client = Client(app, hop())
    for _ in range(11):
        client.op(op="subscribe", channels=["global"], since=0)
        await settle()
    got = client.frames()
    assert [f.get("op") for f in got].count("subscribed") == 10
    assert len([f for f in got if "seq" in f and "channel" in f]) == 10  # one replayed each
    assert got[-1] == {"op": "error", "channel": None, "status": 429, "retry_after": 42,
                       "detail": got[-1]["detail"]}
    assert "10 requests per minute" in got[-1]["detail"]
    client.op(op="unsubscribe", channels=["global"])  # reads nothing: never refused
    await settle()
    assert not client.task.done() and not broker.by_channel
    await client.leave()


async def test_a_replay_longer_than_the_bound_is_a_gap_not_a_flood() -> None:
    app, _, feed = make()
    feed.head = feed.cursor = 5000  # type: ignore[attr-defined]
    asked: list[int] = []

    async def read(since: int, upto: int | None, limit: int, *_: Any,
                   ) -> tuple[ConsistencyToken, list[Row], ConsistencyToken]:
        asked.append(limit)
        rows = [Row(s, "knowledge", f"d{s}", 1) for s in range(since + 1, (upto or 0) + 1)]
        return ConsistencyToken(1), rows[:limit], ConsistencyToken(2)

    feed.read = read  # type: ignore[method-assign]
    client = Client(app, hop())
    client.op(op="subscribe", channels=["global"], since=1)
    await settle()
    got = client.frames()
    assert [f["op"] for f in got] == ["gap", "subscribed"] and got[0]["since"] == 1
    assert max(asked) <= frames.MAX_REPLAY + 1
    client.op(op="subscribe", channels=["global"], since=5000 - frames.MAX_REPLAY)
    await settle()
    replayed = [f for f in client.frames()[2:] if "channel" in f and "seq" in f]
    assert len(replayed) == frames.MAX_REPLAY
    await client.leave()


async def test_a_connection_over_the_fleet_wide_cap_is_refused_with_429() -> None:
    slots = Slots(cap=1)
    app, broker, _ = make(limits={"free": 5}, slots=slots)
    first = Client(app, hop())
    await settle()
    second = Client(app, hop())
    await asyncio.wait_for(second.task, 2)
    assert second.sent[0]["status"] == 429 and b"across all regions" in second.sent[1]["body"]
    assert len(broker.connections) == 1 and len(slots.held) == 1
    await first.leave()
    assert not slots.held


# Item 2: the socket lives as long as the token (exp + leeway, signed by the edge in the hop).

async def test_an_upgrade_whose_hop_carries_no_deadline_is_refused() -> None:
    app, _, _ = make()
    client = Client(app, hop(query=""))
    await asyncio.wait_for(client.task, 2)
    assert client.sent[0]["status"] == 401 and b"deadline" in client.sent[1]["body"]


async def test_the_socket_closes_with_4401_when_its_tokens_deadline_passes() -> None:
    app, broker, _ = make()
    client = Client(app, hop(until=time.time() + 1))
    client.op(op="subscribe", channels=["global"])
    await settle()
    assert client.frames()[0]["expires_at"] == int(time.time() + 1)
    closed = await client.closed()
    assert closed == {"type": "websocket.close", "code": frames.CLOSE_UNAUTHORIZED,
                      "reason": "token-expired: connect again with a fresh token and since"}
    assert not broker.connections


async def test_a_renewal_signed_by_the_edge_moves_the_deadline() -> None:
    app, _, _ = make()
    client = Client(app, hop(until=time.time() + 1))
    later = int(time.time() + 3600)
    client.send_raw(sign_renewal(HopSigner(SECRET), ALICE, later, "r1"))
    await settle()
    assert client.frames() == [{"op": "authed", "expires_at": later}]
    await asyncio.sleep(1.5)  # past the first deadline
    assert not client.task.done()
    await client.leave()


async def test_a_renewal_for_another_caller_closes_with_4403() -> None:
    app, _, _ = make()
    client = Client(app, hop())
    other = Principal(sub="rt-mallory", tier="free")
    client.send_raw(sign_renewal(HopSigner(SECRET), other, int(time.time() + 60), "r1"))
    assert (await client.closed())["code"] == frames.CLOSE_TOKEN_MISMATCH


async def test_renewals_the_edge_did_not_sign_for_this_socket_are_refused() -> None:
    app, _, _ = make()
    client = Client(app, hop())
    later = int(time.time() + 3600)
    client.send_raw(sign_renewal(HopSigner("x" * 32), ALICE, later, "r1"))   # forged
    client.send_raw(sign_renewal(HopSigner(SECRET), ALICE, later, "r2"))     # another socket's
    client.op(op="auth", token="a.jwt.the-hub-cannot-verify")
    await settle()
    got = client.frames()
    assert [(f["op"], f["status"]) for f in got] == [("error", 401)] * 3
    assert not client.task.done()
    await client.leave()
