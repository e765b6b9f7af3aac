"""The shared wire package: tokens, hop signatures, problems, strict decoding."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import (
    BadRequest,
    ConsistencyToken,
    HopError,
    HopSigner,
    Principal,
    RateLimited,
    ReplicaBehind,
    TwinCreate,
    TwinGrant,
    Unauthorized,
    Unprocessable,
)
from mbwire.decode import check_twin_id, decode_json, decode_object
from mbwire.errors import PROBLEM_BASE

SECRET = "a-secret-of-sufficient-length"
principals = st.builds(
    Principal,
    # Any sub a token may carry: no control characters (C0, DEL, C1), as SUB_PATTERN says.
    sub=st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=40),
    tier=st.sampled_from(["free", "pro", "enterprise", "internal"]),
    role=st.sampled_from(["agent", "participant", "sre", "admin"]),
)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_token_round_trips_through_text_and_pg_lsn(lsn: int) -> None:
    token = ConsistencyToken(lsn)
    assert ConsistencyToken.parse(str(token)) == token
    assert ConsistencyToken.from_pg_lsn(token.to_pg_lsn()) == token


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_tokens_order_as_strings_like_their_positions(a: int, b: int) -> None:
    # Redis Lua and clients compare tokens as strings; that must agree with LSN order.
    assert (str(ConsistencyToken(a)) < str(ConsistencyToken(b))) == (a < b)


@pytest.mark.parametrize("raw", ["", "L123", "X0000000000000000", "Lzzzzzzzzzzzzzzzz", "0/16B3748"])
def test_foreign_tokens_are_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest):
        ConsistencyToken.parse(raw)


@given(principals, st.sampled_from(["GET", "POST", "PATCH"]), st.text(max_size=30))
def test_hop_round_trips_the_principal(principal: Principal, method: str, rid: str) -> None:
    signer = HopSigner(SECRET)
    headers = signer.sign(method, "/v1/twins/x", principal, rid)
    assert signer.verify(method, "/v1/twins/x", headers, rid) == principal


@pytest.mark.parametrize("sub", ["a\x00b", "bob\n", "\nbob", "a\rb", "a\x7fb", "a\x85b", ""])
def test_a_sub_with_control_characters_is_not_a_principal(sub: str) -> None:
    # "bob\n" too: Python's ``$`` matches before a trailing newline.
    with pytest.raises(msgspec.ValidationError, match=r"\$\.sub"):
        msgspec.convert({"sub": sub, "tier": "pro"}, Principal)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"sub": sub, "access": "read"}, TwinGrant)


@pytest.mark.parametrize("twin_id", ["abc\n", "abc\x00", "", "-abc", "a" * 129])
def test_twin_ids_end_where_the_string_ends(twin_id: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"twin_id": twin_id}, TwinCreate)
    with pytest.raises(Unprocessable):
        check_twin_id(twin_id)


def test_hop_rejects_forgery_tampering_replay_and_other_secrets() -> None:
    signer = HopSigner(SECRET)
    alice = Principal(sub="alice", tier="free")
    headers = signer.sign("GET", "/v1/twins/x", alice, "r1", now=1000.0)
    with pytest.raises(HopError):
        signer.verify("GET", "/v1/twins/x", {}, "r1", now=1000.0)
    with pytest.raises(HopError):  # another path
        signer.verify("GET", "/v1/twins/y", headers, "r1", now=1000.0)
    with pytest.raises(HopError):  # another principal under the same signature
        forged = dict(headers)
        forged["x-mb-principal"] = HopSigner(SECRET).sign(
            "GET", "/", Principal(sub="root", tier="internal"), "r1")["x-mb-principal"]
        signer.verify("GET", "/v1/twins/x", forged, "r1", now=1000.0)
    with pytest.raises(HopError):  # too old
        signer.verify("GET", "/v1/twins/x", headers, "r1", now=1000.0 + 61)
    with pytest.raises(HopError):  # signed with another secret
        HopSigner("another-secret-of-length").verify("GET", "/v1/twins/x", headers, "r1",
                                                     now=1000.0)
    assert signer.verify("GET", "/v1/twins/x", headers, "r1", now=1000.0) == alice


def test_problem_bodies_carry_the_contract_fields() -> None:
    body = ReplicaBehind("behind", retry_after=3).body(instance="/v1/twins/x", request_id="r")
    assert body["type"] == PROBLEM_BASE + "replica-behind"
    assert {k: body[k] for k in ("title", "status", "detail", "instance", "request_id")} == {
        "title": "Replica behind consistency token", "status": 503, "detail": "behind",
        "instance": "/v1/twins/x", "request_id": "r",
    }
    assert ReplicaBehind("behind", retry_after=3).headers() == {"Retry-After": "3"}
    assert RateLimited(retry_after=0).headers() == {"Retry-After": "1"}
    assert "WWW-Authenticate" in Unauthorized("expired").headers()


def test_decoding_names_what_is_wrong() -> None:
    with pytest.raises(BadRequest):
        decode_json(b"{not json", TwinCreate)
    with pytest.raises(Unprocessable, match="profile"):
        decode_json(b'{"profile": 3}', TwinCreate)
    with pytest.raises(Unprocessable, match="unknown"):
        decode_json(b'{"twin_id": "a", "surprise": 1}', TwinCreate)
    with pytest.raises(Unprocessable):
        decode_json(b'{"twin_id": "has space"}', TwinCreate)
    with pytest.raises(Unprocessable):
        decode_object(b"[1, 2]")
    assert decode_object(b'{"a": null}') == {"a": None}
    with pytest.raises(Unprocessable, match="twin id"):
        check_twin_id("../etc")


@given(principals)
def test_principal_wire_round_trip(principal: Principal) -> None:
    assert msgspec.json.decode(msgspec.json.encode(principal), type=Principal) == principal


@pytest.mark.parametrize("opener,closer", [("{\"a\":", "}"), ("[", "]")])
def test_json_nested_thousands_deep_is_a_422_naming_the_limit(opener: str, closer: str) -> None:
    body = (opener * 10_000 + "1" + closer * 10_000).encode()
    with pytest.raises(Unprocessable, match="nested deeper than the limit of 64 levels"):
        decode_object(b'{"p": ' + body + b"}")
    with pytest.raises(Unprocessable):  # arrays: "Expected `object`" comes first
        decode_json(b'{"profile": ' + body + b"}", TwinCreate)
