"""Awareness bookkeeping, pure: what one twin's providers announced (``Presences``, one per room
in a worker) and which clients one connection speaks for (``Announced``).

Awareness is ephemeral: never stored, never in the change feed. The hub keeps the latest state of
each client only so a provider that joins is told who is there at once (as y-websocket's server
does), and forgets a state ``timeout_s`` (30 s, y-protocols' ``outdatedTimeout``) after it was
last renewed: providers renew theirs every 15 s, and drop others' after 30 s themselves.

A state is accepted under y-protocols' rule (``applyAwarenessUpdate``): a greater clock, or the
same clock with ``null`` for a client that has a state (a removal). Frames are relayed as they
came whatever the hub accepted (every provider applies that rule itself); the rule only decides
what the hub remembers.

When a connection ends, the hub announces its clients gone: ``null`` at the clock they last
had, the message y-websocket's server sends (``removeAwarenessStates`` keeps a remote client's
clock; any provider that still holds the state accepts it). A provider that is in fact still
connected elsewhere and hears it answers with its state at the next clock (y-protocols' "never
let a remote client remove this local state").

Presence is advisory, as in y-websocket: the hub does not check that a client id a connection
announces is its own document's (it bounds how many one connection may speak for)."""

from __future__ import annotations

from dataclasses import dataclass, field

from regional.yjs.protocol import Entry

MAX_CLIENTS_PER_ROOM = 1024      # states a worker remembers per twin
MAX_CLIENTS_PER_CONNECTION = 16  # client ids one connection may speak for (a provider: one)


@dataclass(slots=True)
class Presence:
    clock: int
    state: bytes | None   # JSON text; None once the client left
    at: float             # monotonic seconds: last accepted
    local: bool           # announced by a connection of this worker


@dataclass(slots=True)
class Presences:
    timeout_s: float = 30.0
    states: dict[int, Presence] = field(default_factory=dict)

    def apply(self, entries: list[Entry], now: float, *, local: bool) -> list[Entry]:
        """Remember what the rule accepts; the accepted entries."""
        accepted = []
        for entry in entries:
            known = self.states.get(entry.client)
            clock = 0 if known is None else known.clock
            if clock < entry.clock or (clock == entry.clock and entry.gone and known is not None
                                       and known.state is not None):
                if known is None and len(self.states) >= MAX_CLIENTS_PER_ROOM:
                    self.sweep(now)
                    if len(self.states) >= MAX_CLIENTS_PER_ROOM:
                        continue
                self.states[entry.client] = Presence(
                    entry.clock, None if entry.gone else entry.state, now, local)
                accepted.append(entry)
        return accepted

    def current(self, now: float, *, local_only: bool = False) -> list[Entry]:
        """The states renewed within the timeout (what a provider that joins is sent)."""
        return [Entry(client, p.clock, p.state) for client, p in self.states.items()
                if p.state is not None and now - p.at < self.timeout_s
                and (p.local or not local_only)]

    def sweep(self, now: float) -> None:
        """Forget states not renewed within the timeout (removals too, once as old)."""
        stale = [c for c, p in self.states.items() if now - p.at >= self.timeout_s]
        for client in stale:
            del self.states[client]


@dataclass(slots=True)
class Announced:
    """The clients one connection announced a state for, and their last clocks."""
    clients: dict[int, int] = field(default_factory=dict)

    def note(self, entries: list[Entry]) -> bool:
        """Track them; False (nothing tracked) when the connection would speak for more
        than ``MAX_CLIENTS_PER_CONNECTION`` clients."""
        new = {e.client for e in entries if not e.gone} - self.clients.keys()
        if len(self.clients) + len(new) > MAX_CLIENTS_PER_CONNECTION:
            return False
        for entry in entries:
            if entry.gone:
                self.clients.pop(entry.client, None)
            elif entry.clock >= self.clients.get(entry.client, entry.clock):
                self.clients[entry.client] = entry.clock
        return True

    def removal(self) -> list[Entry]:
        """Entries saying every client still announced is gone (empty when none is)."""
        return [Entry(client, clock, b"null") for client, clock in self.clients.items()]
