"""Connections, their channels and bounded queues, and the fan-out of feed rows to them.

Back-pressure: every connection has a queue of at most ``queue_max`` frames. Fan-out never waits
on a connection: a frame that does not fit marks the connection slow, and its socket is closed
with 4008 (``frames.CLOSE_SLOW_CONSUMER``); the client reconnects with ``since`` and misses
nothing retained. So one stalled reader costs the others nothing, and a worker holds at most
``max_connections * queue_max`` frames."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import secrets
from collections import Counter
from dataclasses import dataclass, field

from crdt.twin import diff, state_vector
from mbwire import ConsistencyToken, Principal
from regional.realtime import channels, frames
from regional.realtime.feed import Row
from regional.replica import Replica
from sealing import SealError

log = logging.getLogger("memorybank.realtime")


@dataclass(slots=True)
class Sub:
    min_seq: int                    # rows at or below it reached the client another way
    yjs: bool = False
    vector: bytes | None = None     # the Yjs state vector the client has (yjs only)
    version: int = 0                # the twin version that vector reached (yjs only)


@dataclass(eq=False, slots=True)
class Connection:
    principal: Principal
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(256))
    subs: dict[str, Sub] = field(default_factory=dict)
    # While a subscribe replays, live frames wait here (same bound as the queue).
    held: list[tuple[str, bytes]] | None = None
    close_code: int | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    # Unix seconds at which the caller's token stops being accepted (mbwire.socket_auth); set
    # when the socket opens, moved by a renewal (which sets ``renewed``).
    until: float = math.inf
    request_id: str = ""            # the upgrade's: a renewal is signed for it
    renewed: asyncio.Event = field(default_factory=asyncio.Event)
    id: str = field(default_factory=lambda: secrets.token_hex(8))  # its fleet slot

    def deliver(self, channel: str, frame: bytes) -> None:
        if self.close_code is not None:
            return
        if self.held is not None:
            self.held.append((channel, frame))
            if len(self.held) > self.queue.maxsize:
                self.close(frames.CLOSE_SLOW_CONSUMER)
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(frames.CLOSE_SLOW_CONSUMER)

    def close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        self.closing.set()


class TooMany(Exception):
    """Over the principal's connection limit for its tier, or over the worker's."""


class Broker:
    def __init__(self, replica: Replica, *, limits: dict[str, int], max_connections: int,
                 queue_max: int = 256) -> None:
        self.replica, self.limits = replica, limits
        self.max_connections, self.queue_max = max_connections, queue_max
        self.connections: set[Connection] = set()
        self.by_channel: dict[str, set[Connection]] = {}
        self.per_sub: Counter[str] = Counter()

    def admit(self, principal: Principal) -> Connection:
        limit = self.limits.get(principal.tier, 0)
        if self.per_sub[principal.sub] >= limit:
            raise TooMany(f"at most {limit} realtime connections per {principal.tier} caller")
        if len(self.connections) >= self.max_connections:
            raise TooMany("this hub holds as many realtime connections as it may; try later")
        conn = Connection(principal, asyncio.Queue(self.queue_max))
        self.connections.add(conn)
        self.per_sub[principal.sub] += 1
        return conn

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.per_sub[conn.principal.sub] -= 1
            if self.per_sub[conn.principal.sub] <= 0:
                del self.per_sub[conn.principal.sub]
        self.drop(conn, list(conn.subs))

    def add(self, conn: Connection, channel: str, sub: Sub) -> None:
        conn.subs[channel] = sub
        self.by_channel.setdefault(channel, set()).add(conn)

    def drop(self, conn: Connection, names: list[str]) -> None:
        for channel in names:
            conn.subs.pop(channel, None)
            members = self.by_channel.get(channel)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self.by_channel[channel]

    def close_all(self, code: int) -> None:
        for conn in list(self.connections):
            conn.close(code)

    async def publish(self, rows: list[Row], token: ConsistencyToken) -> None:
        """Fans a batch of feed rows out, in seq order; ``token``: where all are readable."""
        states: dict[str, tuple[bytes, int] | None] = {}
        for row in rows:
            routed = channels.route(row.kind, row.key, row.version)
            if routed is None or routed[0] not in self.by_channel:
                continue
            channel, data = routed
            if row.kind in channels.ACCESS_KINDS:
                await self.recheck(channel, row.key)
            members = [c for c in self.by_channel.get(channel, ())
                       if row.seq > c.subs[channel].min_seq]
            if not members:
                continue
            plain = frames.message(channel, row.kind, data, str(token), row.seq)
            for conn in members:
                sub = conn.subs[channel]
                if sub.yjs and row.kind == "twin":
                    if row.version is not None and row.version <= sub.version:
                        continue  # the client's document already holds it (an earlier diff)
                    if row.key not in states:
                        states[row.key] = await self.state(row.key)
                    yjs = self.yjs_data(sub, states[row.key], data)
                    conn.deliver(channel, frames.message(channel, row.kind, yjs, str(token),
                                                         row.seq))
                else:
                    conn.deliver(channel, plain)

    async def state(self, twin_id: str) -> tuple[bytes, int] | None:
        """The twin's state (opened) and version; None when gone or when a stored value does not
        open under its key (the message then goes without its update; the next one carries
        the diff from what the client has)."""
        try:
            found = await self.replica.twin_state(twin_id)
        except SealError:
            log.error("twin %s: a stored value does not open under its key", twin_id)
            return None
        return None if found is None else (found[0], found[1].version)

    @staticmethod
    def yjs_data(sub: Sub, state: tuple[bytes, int] | None, data: dict[str, object],
                 ) -> dict[str, object]:
        """The message's data plus ``update``: base64 of the Yjs V1 diff from what the client
        has, after which the client has the whole state (so the next diff starts there)."""
        if state is None:
            return data
        try:
            update = diff(state[0], sub.vector)
            sub.vector, sub.version = state_vector(state[0]), state[1]
        except ValueError:  # a stored state pycrdt cannot read: the next message sends it all
            sub.vector, sub.version = None, 0
            return data
        return {**data, "update": base64.b64encode(update).decode(), "state_version": state[1]}

    async def recheck(self, channel: str, twin_id: str) -> None:
        """A grant changed: drop the channel, with an error frame, for whoever lost read access."""
        members = list(self.by_channel.get(channel, ()))
        subs = {c.principal for c in members}
        allowed = {p for p in subs
                   if twin_id in await channels.may_read(self.replica, p, {twin_id})}
        for conn in members:
            if conn.principal not in allowed:
                self.drop(conn, [channel])
                # Channel "": a control frame, kept even though the channel is gone.
                conn.deliver("", frames.error(
                    f"access to {channel} was revoked", channel=channel, status=403))
