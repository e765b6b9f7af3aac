"""Convergence: concurrent client updates, delivered in any order and with duplicates, through
the stateless ``merge`` and the resident ``TwinDoc``, reach one profile and one state vector."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Snapshot

from crdt import MissingDependencies, TwinDoc, merge, profile_of, state_vector
from crdt.v1 import decode_state_vector, read_delete_set
from tests.unit.crdt.crdt_helpers import canon, client, client_updates_for, ops, seed_state

SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def client_updates(base: bytes, per_client: list[list[Any]], batched: bool) -> list[bytes]:
    """Every client's updates, each client synced to ``base`` with its own id."""
    return [
        update
        for index, edits in enumerate(per_client)
        for update in client_updates_for(base, edits, 1000 + index, batched=batched)
    ]


def deliver(apply: Callable[[bytes], bool], deliveries: list[bytes]) -> int:
    """Apply every delivery; one refused for missing dependencies goes back to the end of
    the queue, as a client resends after syncing. Returns how many were refused."""
    queue, refused, stalled = deque(deliveries), 0, 0
    while queue:
        update = queue.popleft()
        try:
            apply(update)
            stalled = 0
        except MissingDependencies:
            refused += 1
            stalled += 1
            queue.append(update)
            assert stalled <= len(queue), "no queued update can ever apply"
    return refused


def reference(base: bytes, updates: list[bytes]) -> tuple[dict[str, Any], dict[int, int]]:
    """Plain pycrdt, updates in the order they were made: what the twin must converge to."""
    doc: Doc[Any] = Doc()
    doc.get("profile", type=Map)
    for update in [base, *updates]:
        doc.apply_update(update)
    return canon(profile_of(doc.get_update())), decode_state_vector(doc.get_state())


@SLOW
@given(
    per_client=st.lists(st.lists(ops, min_size=1, max_size=4), min_size=2, max_size=4),
    batched=st.booleans(),
    data=st.data(),
)
def test_any_order_and_duplication_converges(
    per_client: list[list[Any]], batched: bool, data: st.DataObject
) -> None:
    base = seed_state()
    updates = client_updates(base, per_client, batched)
    extra = data.draw(st.lists(st.sampled_from(updates), max_size=len(updates))) if updates else []
    deliveries = data.draw(st.permutations(updates + extra))
    expected_profile, expected_sv = reference(base, updates)

    resident = TwinDoc.load(base)
    refused_resident = deliver(resident.apply, deliveries)

    states = [base]

    def stateless(update: bytes) -> bool:
        merged = merge(states[-1], update)
        states.append(merged.state)
        return merged.changed

    refused_stateless = deliver(stateless, deliveries)
    final = states[-1]

    for state in (final, resident.state()):
        assert canon(profile_of(state)) == expected_profile
        assert decode_state_vector(state_vector(state)) == expected_sv
    assert canon(resident.profile()) == expected_profile
    assert decode_state_vector(resident.state_vector()) == expected_sv
    if batched:  # one update per client: nothing depends on anything but the base
        assert refused_resident == refused_stateless == 0

    # Idempotent: every update, again, changes nothing, through either path.
    for update in updates:
        again = merge(final, update)
        assert not again.changed
        assert canon(profile_of(again.state)) == expected_profile
        assert not resident.apply(update)


@SLOW
@given(edits=st.lists(ops, min_size=1, max_size=6), data=st.data())
def test_changed_is_reported_exactly_when_the_state_moves(
    edits: list[Any], data: st.DataObject
) -> None:
    base = seed_state()
    updates = client_updates(base, [edits], batched=False)
    again = data.draw(st.lists(st.sampled_from(updates), max_size=3)) if updates else []
    twin = TwinDoc.load(base)
    history = [base]
    for update in updates + again:
        changed = twin.apply(update)
        # Oracle, from plain pycrdt: did the state vector or the set of deleted ids move?
        assert changed == (_fingerprint(*history, update) != _fingerprint(*history))
        if changed:
            history.append(update)


def _fingerprint(*updates: bytes) -> tuple[dict[int, int], set[tuple[int, int]]]:
    """State vector and every deleted id, of a plain pycrdt doc fed ``updates``. (Re-encoded
    bytes would not do: Yrs writes a plain JSON object's keys in hash order.)"""
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    ranges, _ = read_delete_set(Snapshot.from_doc(doc).encode(), 0)
    deleted = {(c, clock) for c, start, n in ranges for clock in range(start, start + n)}
    return decode_state_vector(doc.get_state()), deleted


def test_duplicate_of_a_delete_only_update_is_not_a_change() -> None:
    base = seed_state()
    doc, root = client(base, 77)
    sv = doc.get_state()
    del root["a"]
    delete_only = doc.get_update(sv)
    assert delete_only[0] == 0  # no structs, only a delete set

    twin = TwinDoc.load(base)
    assert twin.apply(delete_only)
    assert "a" not in twin.profile()
    assert not twin.apply(delete_only)
    merged = merge(base, delete_only)
    assert merged.changed
    assert not merge(merged.state, delete_only).changed


def test_pending_update_is_refused_then_applies_after_its_dependency() -> None:
    base = seed_state()
    doc, root = client(base, 55)
    first = _send(doc, lambda: root.__setitem__("k", Map({"x": 1})))
    second = _send(doc, lambda: root["k"].__setitem__("y", 2))  # lives inside the map of `first`
    twin = TwinDoc.load(base)
    before = twin.state()
    with pytest.raises(MissingDependencies):  # its parent is missing
        twin.apply(second)
    assert twin.state() == before
    assert twin.apply(first) and twin.apply(second)
    assert twin.profile()["k"] == {"x": 1, "y": 2}


def test_deleting_unknown_items_is_refused_as_missing() -> None:
    base = seed_state()
    doc, root = client(base, 56)
    created = _send(doc, lambda: root.__setitem__("tmp", 1))
    sv = doc.get_state()
    del root["tmp"]
    deletion = doc.get_update(sv)
    with pytest.raises(MissingDependencies):  # it deletes items the twin never saw
        merge(base, deletion)
    after = merge(merge(base, created).state, deletion)
    assert after.changed
    assert "tmp" not in profile_of(after.state)


def _send(doc: Doc[Any], fn: Callable[[], object]) -> bytes:
    sv = doc.get_state()
    with doc.transaction():
        fn()
    return doc.get_update(sv)
