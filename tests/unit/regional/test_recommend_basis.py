"""The recommendation basis and its reasons, and the agent listing's cursor: pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import Unprocessable
from regional.agents import decode_cursor, encode_cursor, listing_sql
from regional.recommend import interleave
from regional.recommend_basis import basis_of, interests_of, shared_reason, similarity_reason


def test_the_basis_reads_fields_interests_and_events() -> None:
    basis = basis_of(
        {"bio": "Builds collaborative editors", "interests": ["CRDT", " Sync ", "crdt"],
         "age": 3, "address": {"city": "Amsterdam"}},
        [("page_view", {"doc": "yjs internals"}), ("note", {"text": "offline editing"})])
    assert basis.interests == ["crdt", "sync"]
    assert basis.fields == {"bio": "Builds collaborative editors", "address": "Amsterdam"}
    assert basis.events == ["page_view yjs internals", "note offline editing"]
    assert basis.text().startswith("crdt, sync\nBuilds collaborative editors")
    assert not basis.empty


def test_an_empty_profile_without_events_is_an_empty_basis() -> None:
    assert basis_of({}, []).empty
    assert basis_of({"n": 1, "flag": True}, []).empty


def test_interests_may_be_a_comma_separated_string() -> None:
    assert interests_of({"tags": "crdt, Sync,,"}) == ["crdt", "sync"]


def test_a_reason_names_the_fields_and_counts_the_events_it_shares_words_with() -> None:
    basis = basis_of({"bio": "collaborative editing with CRDTs", "city": "Amsterdam"},
                     [("read", {"t": "editing offline"}), ("read", {"t": "nothing alike"}),
                      ("read", {"t": "collaborative whiteboards"})])
    assert similarity_reason(basis, "Collaborative editing, explained") == (
        "similar to your profile's 'bio' and 2 recent events")
    assert similarity_reason(basis, "zzz qqq") == (
        "close in meaning to your profile and recent events")


def test_a_reason_names_shared_tags() -> None:
    basis = basis_of({"interests": ["crdt"], "bio": "x"}, [])
    assert similarity_reason(basis, "other words", ["CRDT"]).startswith("tagged crdt like your")


def test_shared_interests_reason() -> None:
    assert shared_reason(["a", "b", "c"]) == "shares 3 interests: a, b, c"
    assert shared_reason(["a"]) == "shares 1 interest: a"
    assert shared_reason(list("abcdefg")).endswith("a, b, c, d, e and 2 more")


@given(st.booleans(), st.integers(min_value=0, max_value=2**63 - 1))
def test_a_cursor_round_trips_under_its_own_sort(ascending: bool, seq: int) -> None:
    cursor = encode_cursor(ascending, seq)
    assert decode_cursor(cursor, ascending) == seq
    with pytest.raises(Unprocessable):
        decode_cursor(cursor, not ascending)


@pytest.mark.parametrize("bad", ["x", "====", "YWI", "bm9wZQ", "YS0x"])
def test_a_made_up_cursor_is_a_422(bad: str) -> None:
    with pytest.raises(Unprocessable):
        decode_cursor(bad, True)


def test_the_listing_is_keyed_on_the_commit_position_never_an_offset() -> None:
    sql = listing_sql(ascending=False, q=True, type_=True, after=True)
    assert "a.listed_seq < %(after)s" in sql and "order by a.listed_seq desc" in sql
    assert "offset" not in sql and "websearch_to_tsquery" in sql


def test_interleave_alternates_kinds_up_to_the_limit() -> None:
    from mbwire.types_agents import Recommendation

    def r(i: str) -> Recommendation:
        return Recommendation(id=i, kind="agent", score=1.0, reason="x")

    got = interleave([[r("k1"), r("k2")], [], [r("a1"), r("a2"), r("a3")]], 4)
    assert [x.id for x in got] == ["k1", "a1", "k2", "a2"]
