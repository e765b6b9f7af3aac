"""The awareness relay's payloads without Redis: another worker's states reach the rooms, a
worker's own are ignored, a query is answered with this worker's states, and a full outbox
drops (awareness heals at the next renewal) instead of blocking a provider."""

from __future__ import annotations

from typing import Any

from regional.yjs.relay import QUERY, STATES, AwarenessRelay, channel_of


def relay(queue_max: int = 4) -> tuple[AwarenessRelay, list[tuple[str, bytes]]]:
    one = AwarenessRelay(None, None, queue_max=queue_max)  # type: ignore[arg-type]
    heard: list[tuple[str, bytes]] = []
    one.heard = lambda twin, update: heard.append((twin, update))
    return one, heard


def drained(one: AwarenessRelay) -> list[Any]:
    out = []
    while not one.outbox.empty():
        out.append(one.outbox.get_nowait())
    return out


def test_states_from_another_worker_are_heard_and_our_own_are_not() -> None:
    one, heard = relay()
    other = b"\x01" * 8
    one._heard(channel_of("t1").encode(), STATES + other + b"\x00")
    one._heard(channel_of("t1").encode(), STATES + one.sender + b"\x00")
    one._heard(b"some-other-channel", STATES + other + b"\x00")
    one._heard(channel_of("t1").encode(), b"A")  # too short to be ours
    assert heard == [("t1", b"\x00")]


def test_a_query_is_answered_with_this_workers_states_only_when_it_has_some() -> None:
    one, _ = relay()
    one.ours = lambda twin: b"\x01\x07\x01\x02{}" if twin == "t1" else None
    one._heard(channel_of("t2").encode(), QUERY + b"\x02" * 8)
    assert drained(one) == []
    one._heard(channel_of("t1").encode(), QUERY + b"\x02" * 8)
    assert drained(one) == [(channel_of("t1"), STATES + one.sender + b"\x01\x07\x01\x02{}")]


def test_a_full_outbox_drops_instead_of_waiting() -> None:
    one, _ = relay(queue_max=2)
    for _ in range(5):
        one.publish("t1", b"\x00")
    one.query("t1")
    assert len(drained(one)) == 2 and one.dropped == 4
