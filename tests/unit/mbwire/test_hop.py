"""The hop signature v2: what it covers (any change breaks it), replays, the replay bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import HopError, HopSigner, Principal
from mbwire.hop import HOP_HEADER, ReplayCache

SECRET = "a-hop-secret-of-some-length"
NOW = 1_000_000.0

texts = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30)
requests = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    "path": texts.map(lambda t: "/v1/" + t),
    "query": texts,
    "body": st.binary(max_size=64),
    "principal": st.builds(Principal, sub=texts.filter(bool),
                           tier=st.sampled_from(["free", "pro", "internal"])),
    "request_id": texts.filter(bool),
})


def _sign(r: dict) -> dict[str, str]:
    return HopSigner(SECRET).sign(r["method"], r["path"], r["principal"], r["request_id"],
                                  query=r["query"], body=r["body"], now=NOW)


def _verify(signer: HopSigner, r: dict, headers: dict[str, str]) -> Principal | None:
    return signer.verify(r["method"], r["path"], headers, r["request_id"], query=r["query"],
                         body=r["body"], now=NOW)


@given(requests, requests, st.sampled_from(["method", "path", "query", "body", "principal",
                                            "request_id"]))
def test_any_change_to_a_covered_field_breaks_the_signature(sent: dict, other: dict,
                                                            field: str) -> None:
    headers = _sign(sent)
    received = {**sent, field: other[field]}
    if field == "method":
        same = received["method"].upper() == sent["method"].upper()
    else:
        same = received[field] == sent[field]
    if field == "principal":  # the principal travels in its own header, covered by the MAC
        headers = {**headers, **_sign({**sent, "principal": other["principal"]}),
                   HOP_HEADER: headers[HOP_HEADER]}
    signer = HopSigner(SECRET)
    if same:
        assert _verify(signer, received, headers) == sent["principal"]
    else:
        with pytest.raises(HopError, match="does not match"):
            _verify(signer, received, headers)


@given(requests)
def test_a_hop_is_accepted_once_and_its_replay_refused(r: dict) -> None:
    signer, headers = HopSigner(SECRET), _sign(r)
    assert _verify(signer, r, headers) == r["principal"]
    with pytest.raises(HopError, match="replayed"):
        _verify(signer, r, headers)
    # The same request signed again (a retry) carries a fresh nonce: it is not a replay.
    assert _verify(signer, r, _sign(r)) == r["principal"]


def test_forged_hops_do_not_fill_the_replay_cache() -> None:
    r = {"method": "GET", "path": "/v1/twins/x", "query": "", "body": b"",
         "principal": Principal(sub="a", tier="pro"), "request_id": "r1"}
    signer, headers = HopSigner(SECRET), _sign(r)
    with pytest.raises(HopError):
        _verify(signer, {**r, "body": b"x"}, headers)
    assert _verify(signer, r, headers) == r["principal"]


def test_replay_cache_forgets_after_the_window_and_fails_closed_when_full() -> None:
    cache = ReplayCache(60, max_entries=2)
    assert cache.admit("a", 100, now=100)
    assert not cache.admit("a", 100, now=159)
    assert cache.admit("b", 101, now=101)
    assert cache.admit("c", 102, now=102)  # pushes out "a" while still in its window
    assert not cache.admit("a", 100, now=103)  # so everything signed at or before 100 is refused
    assert not cache.admit("d", 100, now=103)
    assert cache.admit("e", 103, now=103)
    # Past the window, signatures are forgotten (the signer refuses them as expired anyway).
    assert cache.admit("c", 300, now=300)
