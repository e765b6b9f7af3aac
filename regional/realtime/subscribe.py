"""A subscribe op: check the channels, register them, replay what ``since`` asks for, then go
live, without losing or repeating a row.

The order matters. The channels are registered first, at the feed's current cursor ``C``, with
the connection *holding* live frames; so every row after ``C`` is caught, whatever the awaits
below take. Then access is checked (on the replica, which already shows every row up to ``C``),
rows ``since < seq <= C`` are replayed from the replica's ``change_feed``, and the held frames
follow. A client that sends a ``since`` beyond ``C`` (its last hub's replica was ahead of this
one) gets only rows after its ``since``."""

from __future__ import annotations

import asyncio
import base64
import binascii

from crdt.errors import CrdtError
from crdt.twin import diff, state_vector
from crdt.v1 import decode_state_vector
from mbwire import ConsistencyToken, Problem, Unavailable
from regional.audit import AuditRecorder
from regional.realtime import channels, frames
from regional.realtime.broker import Broker, Connection, Sub
from regional.realtime.feed import RealtimeFeed
from regional.realtime.quota import OpMeter


class Subscriptions:
    def __init__(self, broker: Broker, feed: RealtimeFeed, region: str, meter: OpMeter, *,
                 wait_s: float = 1.0, audit: AuditRecorder | None = None) -> None:
        self.broker, self.feed, self.meter = broker, feed, meter
        self.audit = audit  # each twin subscribed to (or refused) is in its audit trail
        self.wait_s = wait_s
        self.region = region

    async def handle(self, conn: Connection, op: frames.Subscribe | frames.Unsubscribe) -> None:
        if isinstance(op, frames.Unsubscribe):
            self.broker.drop(conn, op.channels)
            return
        # Charged before anything is read: a refused op reads nothing.
        refused = await self.meter.charge(conn.principal)
        if refused is not None:
            await conn.queue.put(refused)
            return
        await self.subscribe(conn, op)

    async def subscribe(self, conn: Connection, op: frames.Subscribe) -> None:
        if op.consistency_token is not None:
            # Read-your-writes for sockets: as for a read, the token is waited for within the
            # budget; one never issued, or not replayed in time, refuses this op (not the socket).
            try:
                token = ConsistencyToken.parse(op.consistency_token)
                await self.feed.clock.settle(token, self.wait_s)
            except Problem as exc:
                await conn.queue.put(frames.error(exc.detail, status=exc.status))
                return
        twins: dict[str, str] = {}   # channel -> twin id
        named = []
        for channel in dict.fromkeys(op.channels):
            try:
                twin = channels.check_name(channel)
            except channels.BadName as exc:
                await conn.queue.put(frames.error(str(exc), channel=channel, status=400))
                continue
            except ValueError as exc:
                await conn.queue.put(frames.error(str(exc), channel=channel, status=404))
                continue
            vector = None
            if op.yjs and twin is not None and channel in op.state_vectors:
                try:
                    vector = base64.b64decode(op.state_vectors[channel], validate=True)
                    decode_state_vector(vector)
                except (binascii.Error, ValueError, CrdtError):
                    await conn.queue.put(frames.error("not a base64 Yjs state vector",
                                                      channel=channel, status=422))
                    continue
            if len(conn.subs) >= frames.MAX_CHANNELS and channel not in conn.subs:
                await conn.queue.put(frames.error(f"at most {frames.MAX_CHANNELS} channels per "
                                                  "connection", channel=channel, status=429))
                continue
            if twin is not None:
                twins[channel] = twin
            named.append((channel, vector))
        if not self.feed.started.is_set():
            # Before the tail knows where the feed stands there is no cursor to replay up to.
            try:
                async with asyncio.timeout(5):
                    await self.feed.started.wait()
            except TimeoutError:
                raise Unavailable("this hub's change feed is not readable yet",
                                  retry_after=1) from None
        # The tail runs a moment behind the replica: let it catch up with what the replica
        # shows now, so the cursor (and a Yjs sync read below) agree with the replica's state
        # and the client is not told again of changes it can already read. Bounded: past it,
        # such changes are announced once more (a client dedupes by version).
        _, head = await self.feed.bounds()
        await self.feed.reach(head, self.wait_s)
        cursor = self.feed.cursor
        live_from = cursor if op.since is None else max(op.since, cursor)
        conn.held = []
        try:
            for channel, vector in named:
                self.broker.add(conn, channel, Sub(live_from, yjs=op.yjs and channel in twins,
                                                   vector=vector))
            readable = await channels.may_read(self.broker.replica, conn.principal,
                                               set(twins.values()))
            for channel, twin in twins.items():
                if self.audit is not None:
                    self.audit.record(conn.principal, "subscribe_twin", twin, conn.request_id,
                                      200 if twin in readable else 403)
                if twin not in readable:
                    self.broker.drop(conn, [channel])
                    await conn.queue.put(frames.error(
                        f"{channel} does not exist or you may not read it", channel=channel,
                        status=403))
            kept = [c for c, _ in named if c in conn.subs]
            if op.since is not None and op.since < cursor and kept:
                await self.replay(conn, kept, op.since, cursor)
            for channel in kept:
                if conn.subs.get(channel) and conn.subs[channel].yjs:
                    await self.sync(conn, channel, twins[channel], cursor)
            await conn.queue.put(frames.subscribed(kept, cursor, str(self.feed.token), self.region,
                                                   int(conn.until)))
        finally:
            held, conn.held = conn.held, None
            for channel, frame in held or ():
                if channel == "" or channel in conn.subs:
                    conn.deliver(channel, frame)

    async def replay(self, conn: Connection, kept: list[str], since: int, upto: int) -> None:
        low, _ = await self.feed.bounds()
        if low and since < low - 1:
            await conn.queue.put(frames.gap(since, low))
            return
        twin_ids = [c.partition(":")[2] for c in kept if c.startswith("twin:")]
        public = [k for c, kinds in (("global", channels.GLOBAL_KINDS),
                                     ("community", channels.COMMUNITY_KINDS)) if c in kept
                  for k in kinds]
        filters = (sorted(channels.TWIN_KINDS), twin_ids, public)
        # One read of at most MAX_REPLAY + 1 rows: one more than is ever sent tells a since too
        # far behind (a gap: resync over HTTP) from one that fits.
        _, rows, token = await self.feed.read(since, upto, frames.MAX_REPLAY + 1, filters)
        if len(rows) > frames.MAX_REPLAY:
            await conn.queue.put(frames.gap(since, low, f"more than {frames.MAX_REPLAY} rows of "
                                            "these channels came after since"))
            return
        for row in rows:
            routed = channels.route(row.kind, row.key, row.version)
            if routed is not None and routed[0] in conn.subs:
                # Awaited: a replay waits for its own client, never for anyone else's.
                await conn.queue.put(frames.message(routed[0], row.kind, routed[1], str(token),
                                                    row.seq))

    async def sync(self, conn: Connection, channel: str, twin_id: str, cursor: int) -> None:
        """The first Yjs frame: what the client lacks of the twin's state as the replica has it
        now (event ``sync``; later ``twin`` messages carry the diffs after it)."""
        found = await self.broker.replica.twin_state(twin_id)
        if found is None:
            return
        state, row = found
        sub = conn.subs[channel]
        update = diff(state, sub.vector)
        sub.vector, sub.version = state_vector(state), row.version
        await conn.queue.put(frames.message(
            channel, "sync", {"twin_id": twin_id, "version": row.version,
                              "update": base64.b64encode(update).decode()},
            str(self.feed.token), cursor))
