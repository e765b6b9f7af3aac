"""The twins this worker's providers have open (a ``Room`` each): the sync answers, the fan-out
of other writers' changes from the change feed, and awareness.

Sync. At the upgrade a session enters its room *before* the twin is read, so every change the
feed hands on after that read is caught (the room's ``head`` moves), and every change handed on
before it is in the state read. The provider's SyncStep1 is answered with a SyncStep2 holding
what it lacks of that state (``crdt.diff``); from then on the session has ``version``.

Fan-out. Every worker tails the change feed for realtime (``regional.realtime.feed``); its sink
hands this module the rows too (``publish``, which only notes them: it never waits). A room
whose ``head`` moved past a session's version is caught up by one task per room (``_pump``):
the twin's logged updates after the oldest version any session has (``twin_updates``, one read
per room, whatever the number of sessions) are sent as y-protocols update messages, each built
once and shared by every session that lacks it. A session further behind than the log reaches
(compaction folded it into the state) is sent the diff of the replica's state against the state
vector it was last sent in full. A provider is sent its own update back once, as the log row it
became: harmless (Yjs ignores what it holds), and central's answer does not say whether a write
changed the twin, so the hub cannot tell a row it made from a concurrent writer's.

States and log rows are read opened (``Replica.twin_state`` and ``twin_log_after`` open the
sealed values with the hub's keyring): what a socket is sent is the plain Yjs update.

Access. A ``grant`` row for the twin re-reads the twin's grants: a session that may no longer
read it is closed with 4403. Writes are checked by central, like any write (``writes``).

Awareness: ``presence`` (what is remembered), ``relay`` (to the other workers and regions)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from crdt.errors import CrdtError
from crdt.twin import diff, state_vector
from mbwire import ConsistencyToken, Problem
from mbwire.access import allows
from regional.realtime.feed import Row
from regional.replica import Replica
from regional.yjs import protocol
from regional.yjs.known import Known
from regional.yjs.presence import Announced, Presences
from regional.yjs.relay import AwarenessRelay
from regional.yjs.session import (
    CLOSE_GONE,
    CLOSE_MALFORMED,
    CLOSE_REFUSED,
    CLOSE_REVOKED,
    CLOSE_UNAVAILABLE,
    Session,
)

log = logging.getLogger("memorybank.yjs")

INITIAL_HOLD_S = 5.0   # how long the upgrade's state waits for the provider's SyncStep1
STEP1_EVERY_S = 1.0    # a provider's SyncStep1 is answered at most this often (each reads)
LOG_ROWS = 512         # logged updates read per round of a room's catch-up


@dataclass(eq=False, slots=True)
class Room:
    twin_id: str
    sessions: set[Session] = field(default_factory=set)
    head: int = 0                # the newest version the feed announced
    known: Known | None = None   # the newest state read, summarised (``known``)
    recheck: bool = False        # a grant changed: check every session's read access
    pump: asyncio.Task[None] | None = None
    presences: Presences = field(default_factory=Presences)
    watched: bool = False        # subscribed on the relay
    watching: asyncio.Task[None] | None = None


class Rooms:
    def __init__(self, replica: Replica, relay: AwarenessRelay | None = None, *,
                 awareness_timeout_s: float = 30.0) -> None:
        self.replica, self.relay = replica, relay
        self.awareness_timeout_s = awareness_timeout_s
        self.rooms: dict[str, Room] = {}
        if relay is not None:
            relay.heard, relay.ours = self.heard, self.ours

    # -- sessions --------------------------------------------------------------------------

    def enter(self, session: Session) -> Room:
        """Registered for the feed (before the upgrade reads the twin)."""
        room = self.rooms.get(session.twin_id)
        if room is None:
            room = self.rooms[session.twin_id] = Room(
                session.twin_id, presences=Presences(self.awareness_timeout_s))
        room.sessions.add(session)
        return room

    def hold(self, session: Session, state: bytes, version: int) -> None:
        """Keep the upgrade's read for the provider's first SyncStep1 (a few seconds at most)."""
        session.initial = (state, version)
        self._learn(self.rooms[session.twin_id], state, version)

        def forget() -> None:
            session.initial = None
        asyncio.get_running_loop().call_later(INITIAL_HOLD_S, forget)

    async def opened(self, session: Session) -> None:
        """The socket is open: SyncStep1 with the twin's state vector, then who is there."""
        room = self.rooms[session.twin_id]
        assert session.initial is not None
        session.send(protocol.sync_step1(state_vector(session.initial[0])))
        session.open = True  # from now on it hears awareness
        if self.relay is not None and not room.watched:
            # In the background: a slow Redis must not hold the sync up.
            room.watched = True
            room.watching = asyncio.get_running_loop().create_task(self._watch(room.twin_id))
        present = room.presences.current(time.monotonic())
        if present:
            session.send(protocol.awareness(protocol.write_awareness(present)))

    async def _watch(self, twin_id: str) -> None:
        assert self.relay is not None
        await self.relay.watch(twin_id)
        self.relay.query(twin_id)  # subscribed first, so the answers are heard

    async def leave(self, session: Session) -> None:
        room = self.rooms.get(session.twin_id)
        if room is None or session not in room.sessions:
            return
        room.sessions.discard(session)
        session.initial = None
        if session.announced is not None:
            # Not a client another connection here speaks for now (it reconnected first).
            kept = {c for s in room.sessions if s.announced is not None
                    for c in s.announced.clients}
            gone = [e._replace(clock=max(e.clock, self._clock(room, e.client)))
                    for e in session.announced.removal() if e.client not in kept]
            session.announced = None
            if gone:
                self._announce(room, protocol.write_awareness(gone), gone, origin=None)
        if room.sessions:
            return
        del self.rooms[session.twin_id]
        if room.pump is not None:
            room.pump.cancel()
        if room.watched and self.relay is not None:
            if room.watching is not None and not room.watching.done():
                room.watching.cancel()
            await self.relay.unwatch(room.twin_id)

    # -- sync ------------------------------------------------------------------------------

    async def answer(self, session: Session, client_vector: bytes) -> None:
        """A SyncStep1: a SyncStep2 with what the provider lacks of the twin's state."""
        now = time.monotonic()
        if now - session.answered_at < STEP1_EVERY_S and session.version is not None:
            return  # answered a moment ago; what changed since reaches it through the feed
        session.answered_at = now
        if session.initial is not None:
            (state, version), session.initial = session.initial, None
        else:
            found = await self._state(session)
            if found is None:
                return
            state, version = found
        try:
            update = diff(state, client_vector)
        except CrdtError as exc:
            session.close(CLOSE_MALFORMED, f"not a state vector: {exc}")
            return
        session.send(protocol.sync_step2(update))
        if session.version is None or version > session.version:
            session.version, session.vector = version, state_vector(state)
        self._kick_if_behind(self.rooms[session.twin_id])

    async def resync(self, session: Session) -> None:
        """After central refused an update for lack of what it builds on (409 sync-first): a
        SyncStep1, whose SyncStep2 answer brings every change the twin lacks (at most one a
        second)."""
        now = time.monotonic()
        if now - session.resynced_at < STEP1_EVERY_S or session.closed:
            return
        session.resynced_at = now
        found = await self._state(session)
        if found is not None:
            session.send(protocol.sync_step1(state_vector(found[0])))

    async def is_new(self, session: Session, update: bytes, *, recheck: bool) -> bool | None:
        """Whether a provider's update holds anything the twin lacks (None: refused, and the
        session closed). ``recheck``: when it looks new against an older copy of the state,
        read the state again before saying so (for a SyncStep2, which a reader sends too)."""
        room = self.rooms[session.twin_id]
        try:
            if room.known is None:
                if await self._state(session) is None:
                    return None
            assert room.known is not None
            new = room.known.is_new(update)
            if new and recheck and room.known.version < room.head:
                if await self._state(session) is None:
                    return None
                new = room.known.is_new(update)
        except CrdtError as exc:
            session.close(CLOSE_REFUSED, f"update refused: {exc}")
            return None
        return new

    async def _state(self, session: Session) -> tuple[bytes, int] | None:
        """The twin's state as the replica has it now (learnt by the room); None when it is
        gone (the session closed) or the replica cannot say (closed too: reconnect)."""
        try:
            found = await self.replica.twin_state(session.twin_id)
        except Problem as exc:
            session.close(CLOSE_UNAVAILABLE, f"hub cannot serve now: {exc.detail}")
            return None
        if found is None:
            session.close(CLOSE_GONE, "the twin no longer exists")
            return None
        state, row = found
        room = self.rooms.get(session.twin_id)
        if room is not None:
            self._learn(room, state, row.version)
        return state, row.version

    @staticmethod
    def _learn(room: Room, state: bytes, version: int) -> None:
        if room.known is None or version > room.known.version:
            try:
                room.known = Known.of(state, version)
            except CrdtError as exc:
                log.error("twin %s: stored state does not decode: %s", room.twin_id, exc)
        room.head = max(room.head, version)

    # -- fan-out ---------------------------------------------------------------------------

    async def publish(self, rows: list[Row], token: ConsistencyToken) -> None:
        """The feed's sink: notes which rooms moved; their pumps do the reading."""
        for row in rows:
            room = self.rooms.get(row.key)
            if room is None:
                continue
            if row.kind == "twin" and row.version is not None:
                room.head = max(room.head, row.version)
                self._kick_if_behind(room)
            elif row.kind == "grant":
                room.recheck = True
                self._kick(room)

    def _kick_if_behind(self, room: Room) -> None:
        if any(s.version is not None and s.version < room.head for s in room.sessions):
            self._kick(room)

    def _kick(self, room: Room) -> None:
        if room.pump is None or room.pump.done():
            room.pump = asyncio.get_running_loop().create_task(self._pump(room))

    async def _pump(self, room: Room) -> None:
        try:
            while room.sessions:
                if room.recheck:
                    room.recheck = False
                    await self._recheck(room)
                head = room.head
                behind = [s for s in room.sessions
                          if s.version is not None and s.version < head]
                if not behind:
                    return
                moved = await self._catch_up(room, behind)
                if not moved and room.head == head and not room.recheck:
                    return  # the replica shows nothing newer yet: the next row kicks again
        except Problem as exc:  # the replica failed: its sessions reconnect (maybe elsewhere)
            for session in list(room.sessions):
                session.close(CLOSE_UNAVAILABLE, f"hub cannot serve now: {exc.detail}")
        except Exception:
            log.exception("yjs fan-out of twin %s failed", room.twin_id)
            for session in list(room.sessions):
                session.close(1011)

    async def _catch_up(self, room: Room, behind: list[Session]) -> bool:
        """One round: log rows to whoever they continue, a diff to whoever they do not.
        Whether any session moved."""
        after = min(s.version for s in behind if s.version is not None)
        rows = await self.replica.twin_log_after(room.twin_id, after, LOG_ROWS)
        messages = [(version, protocol.update(update)) for version, update in rows]
        moved, far = False, []
        for session in behind:
            have = session.version
            if have is None or session not in room.sessions:
                continue
            lacks = [(v, m) for v, m in messages if v > have]
            if lacks and lacks[0][0] == have + 1:
                for _, message in lacks:
                    session.send(message)
                session.version, moved = lacks[-1][0], True
            elif have < room.head:
                far.append(session)
        if not far:
            return moved
        found = await self.replica.twin_state(room.twin_id)
        if found is None:
            for session in list(room.sessions):
                session.close(CLOSE_GONE, "the twin no longer exists")
            return False
        state, row = found
        self._learn(room, state, row.version)
        vector = state_vector(state)
        for session in far:
            if session.version is not None and session.version < row.version:
                session.send(protocol.update(diff(state, session.vector)))
                session.version, session.vector, moved = row.version, vector, True
        return moved

    async def _recheck(self, room: Room) -> None:
        found = await self.replica.twin_state(room.twin_id)
        if found is None:
            for session in list(room.sessions):
                session.close(CLOSE_GONE, "the twin no longer exists")
            return
        _, row = found
        for session in list(room.sessions):
            principal = session.conn.principal
            if not allows(principal, "read", row.owner_sub, row.grants.get(principal.sub)):
                session.close(CLOSE_REVOKED, "read access to the twin was revoked")

    # -- awareness -------------------------------------------------------------------------

    def awareness(self, session: Session, update: bytes) -> None:
        """A provider's awareness update: remembered, relayed to the room's other sessions
        here and to every other worker. Malformed: the session is closed (1007)."""
        try:
            entries = protocol.read_awareness(update)
        except protocol.ProtocolError as exc:
            session.close(CLOSE_MALFORMED, str(exc))
            return
        if session.announced is None:
            session.announced = Announced()
        if not session.announced.note(entries):
            return  # speaking for too many clients: not relayed
        room = self.rooms[session.twin_id]
        self._announce(room, update, entries, origin=session)

    def _announce(self, room: Room, update: bytes, entries: list[protocol.Entry],
                  origin: Session | None) -> None:
        room.presences.apply(entries, time.monotonic(), local=True)
        message = protocol.awareness(update)
        for other in room.sessions:
            if other is not origin and other.open:
                other.send(message)
        if self.relay is not None:
            self.relay.publish(room.twin_id, update)

    def query(self, session: Session) -> None:
        """A provider asked who is there (query awareness)."""
        room = self.rooms[session.twin_id]
        present = room.presences.current(time.monotonic())
        session.send(protocol.awareness(protocol.write_awareness(present)))

    def heard(self, twin_id: str, update: bytes) -> None:
        """Another worker's awareness update (from the relay)."""
        room = self.rooms.get(twin_id)
        if room is None:
            return
        try:
            entries = protocol.read_awareness(update)
        except protocol.ProtocolError as exc:
            log.warning("awareness relay: dropped a malformed update for %s: %s", twin_id, exc)
            return
        room.presences.apply(entries, time.monotonic(), local=False)
        message = protocol.awareness(update)
        for session in room.sessions:
            if session.open:
                session.send(message)

    def ours(self, twin_id: str) -> bytes | None:
        """The states this worker's sessions announced for a twin (answering a query)."""
        room = self.rooms.get(twin_id)
        if room is None:
            return None
        present = room.presences.current(time.monotonic(), local_only=True)
        return protocol.write_awareness(present) if present else None

    @staticmethod
    def _clock(room: Room, client: int) -> int:
        known = room.presences.states.get(client)
        return 0 if known is None else known.clock

    async def sweep(self, every_s: float = 5.0) -> None:
        """Forgets awareness states not renewed within the timeout, for as long as the hub
        runs (providers expire them on their own clock too)."""
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                room.presences.sweep(now)

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            if room.pump is not None:
                room.pump.cancel()
                with contextlib.suppress(BaseException):
                    await room.pump
