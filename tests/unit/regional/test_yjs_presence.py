"""Awareness bookkeeping: y-protocols' clock rule, states forgotten after the timeout, the clients
a connection speaks for, and the removal announced when it ends (which a provider applies)."""

from __future__ import annotations

import json

from pycrdt import Awareness, Doc

from regional.yjs import protocol
from regional.yjs.presence import (
    MAX_CLIENTS_PER_CONNECTION,
    MAX_CLIENTS_PER_ROOM,
    Announced,
    Presences,
)
from regional.yjs.protocol import Entry


def state(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_a_greater_clock_wins_and_a_removal_at_the_same_clock_too() -> None:
    room = Presences()
    assert not room.apply([Entry(1, 0, state(name="x"))], 0.0, local=True)  # as y-protocols
    assert room.apply([Entry(1, 3, state(name="ada"))], 0.0, local=True)
    assert not room.apply([Entry(1, 2, state(name="old"))], 1.0, local=True)
    assert not room.apply([Entry(1, 3, state(name="same clock"))], 1.0, local=True)
    assert room.current(1.0) == [Entry(1, 3, state(name="ada"))]
    assert room.apply([Entry(1, 3, b"null")], 2.0, local=True)  # removal at the same clock
    assert room.current(2.0) == []
    assert not room.apply([Entry(1, 3, b"null")], 2.0, local=True)  # already gone
    assert room.apply([Entry(1, 4, state(name="back"))], 3.0, local=False)
    assert room.current(3.0) == [Entry(1, 4, state(name="back"))]


def test_states_not_renewed_expire_after_the_timeout() -> None:
    room = Presences(timeout_s=30.0)
    room.apply([Entry(1, 1, state(a=1)), Entry(2, 1, state(b=2))], 0.0, local=True)
    room.apply([Entry(2, 2, state(b=3))], 20.0, local=False)
    assert [e.client for e in room.current(29.0)] == [1, 2]
    assert [e.client for e in room.current(30.0)] == [2]
    assert room.current(31.0, local_only=True) == []
    room.sweep(50.0)
    assert list(room.states) == []


def test_a_room_remembers_a_bounded_number_of_clients() -> None:
    room = Presences()
    room.apply([Entry(c, 1, b"{}") for c in range(MAX_CLIENTS_PER_ROOM + 5)], 0.0, local=False)
    assert len(room.states) == MAX_CLIENTS_PER_ROOM


def test_a_connection_tracks_its_clients_and_announces_them_gone_with_their_clocks() -> None:
    mine = Announced()
    assert mine.note([Entry(7, 1, state(x=1))])
    assert mine.note([Entry(7, 4, state(x=2)), Entry(8, 0, state(y=1))])
    assert mine.note([Entry(8, 1, b"null")])  # it said itself that 8 left
    assert mine.removal() == [Entry(7, 4, b"null")]
    assert not mine.note([Entry(100 + c, 0, b"{}") for c in range(MAX_CLIENTS_PER_CONNECTION)])
    assert list(mine.clients) == [7]


def test_a_provider_applies_the_removal_the_hub_sends_when_a_connection_ends() -> None:
    leaving, staying = Awareness(Doc()), Awareness(Doc())
    leaving.set_local_state({"cursor": 3})
    leaving.set_local_state({"cursor": 4})  # clock 1... then renewed
    update = leaving.encode_awareness_update([leaving.client_id])
    staying.apply_awareness_update(update, "hub")
    assert leaving.client_id in staying.states
    mine = Announced()
    mine.note(protocol.read_awareness(update))
    staying.apply_awareness_update(protocol.write_awareness(mine.removal()), "hub")
    assert leaving.client_id not in staying.states


def test_a_provider_still_connected_elsewhere_answers_its_removal_with_a_newer_clock() -> None:
    alive = Awareness(Doc())
    alive.set_local_state({"here": True})
    clock = alive.meta[alive.client_id]["clock"]
    alive.apply_awareness_update(
        protocol.write_awareness([Entry(alive.client_id, clock, b"null")]), "hub")
    assert alive.get_local_state() == {"here": True}
    assert alive.meta[alive.client_id]["clock"] == clock + 1
