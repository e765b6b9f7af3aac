"""Whether a provider's update holds anything the twin's state lacks: the SyncStep2 a provider
answers with (what the hub's state vector lacks, plus the whole delete set) is nothing new when
it has nothing the twin lacks, however the delete set is cut; a real edit always is."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt.errors import CrdtError
from regional.yjs.known import Known, covered, merged


def twin(**values: Any) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    profile = doc.get("profile", type=Map)
    for key, value in values.items():
        profile[key] = value
    return doc


def provider_of(state: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.get("profile", type=Map)
    doc.apply_update(state)
    return doc


def test_a_synced_providers_step2_is_nothing_new_even_with_deletions() -> None:
    server = twin(a=1, b=2)
    server.get("profile", type=Map)["a"] = 3  # overwrites delete: the delete set is not empty
    state = server.get_update()
    known = Known.of(state, 5)
    provider = provider_of(state)
    step2 = provider.get_update(server.get_state())
    assert step2 != b"\x00\x00" and not known.is_new(step2)
    assert not known.is_new(b"\x00\x00") and not known.is_new(state)


def test_an_edit_is_new_and_so_is_a_deletion_of_a_known_item() -> None:
    server = twin(a=1, b=2)
    state = server.get_update()
    known = Known.of(state, 2)
    provider = provider_of(state)
    before = provider.get_state()
    provider.get("profile", type=Map)["c"] = 1
    assert known.is_new(provider.get_update(before))
    deleter = provider_of(state)
    before = deleter.get_state()
    del deleter.get("profile", type=Map)["a"]
    only_deletion = deleter.get_update(before)
    assert only_deletion[0] == 0 and known.is_new(only_deletion)


def test_an_update_a_twin_cannot_take_is_refused() -> None:
    known = Known.of(twin(a=1).get_update(), 1)
    with pytest.raises(CrdtError):
        known.is_new(b"\x05garbage")


def test_ranges_merge_and_cover() -> None:
    ranges = merged([(1, 0, 2), (1, 2, 3), (1, 10, 1), (2, 4, 4), (1, 1, 1)])
    assert ranges == {1: ([0, 10], [5, 11]), 2: ([4], [8])}
    assert covered([(1, 1, 4), (1, 10, 1), (2, 5, 3)], ranges)
    assert not covered([(1, 4, 2)], ranges)
    assert not covered([(3, 0, 1)], ranges)
    assert covered([], ranges) and covered([(9, 0, 0)], ranges)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.one_of(st.none(), st.integers(0, 9))),
                min_size=1, max_size=12))
def test_a_provider_in_sync_never_sends_anything_new(edits: list[tuple[str, int | None]]) -> None:
    server = twin()
    profile = server.get("profile", type=Map)
    for key, value in edits:
        if value is None:
            if key in profile:
                del profile[key]
        else:
            profile[key] = value
    state = server.get_update()
    known = Known.of(state, len(edits))
    provider = provider_of(state)
    assert not known.is_new(provider.get_update(server.get_state()))
    assert not known.is_new(provider.get_update())
