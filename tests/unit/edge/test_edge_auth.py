"""Auth per the contract, and the security list: every way a token can be wrong is a 401."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from mbedge.auth import Authenticator
from mbwire import Principal, Unauthorized
from tests.unit.edge.edge_fakes import HS_SECRET, Rig, make_settings, token

ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER = ed25519.Ed25519PrivateKey.generate()


def _jwk(alg: str, kid: str) -> dict[str, Any]:
    if alg == "EdDSA":
        d = json.loads(OKPAlgorithm.to_jwk(ED_KEY.public_key()))
    else:
        d = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    return {**d, "kid": kid, "alg": alg, "use": "sig"}


JWKS = json.dumps({"keys": [_jwk("EdDSA", "ed-1"), _jwk("RS256", "rsa-1")]})


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"sub": "alice", "tier": "pro", "aud": "memory-bank",
                         "iss": "memorybank-dev", "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def auth(**settings: Any) -> Authenticator:
    return Authenticator(make_settings(**settings))


PROD = {"jwt_algorithms": ("EdDSA", "RS256"), "jwt_jwks": JWKS, "jwt_hs256_secret": None}
MIXED = {"jwt_algorithms": ("HS256", "EdDSA", "RS256"), "jwt_jwks": JWKS}


def rejects(a: Authenticator, header: str | None) -> str:
    with pytest.raises(Unauthorized) as info:
        a.authenticate(header)
    assert "WWW-Authenticate" in info.value.headers()
    return info.value.detail


def test_hs256_token_gives_principal_with_default_role() -> None:
    assert auth().authenticate(f"Bearer {token()}") == Principal(sub="alice", tier="pro")
    assert auth().authenticate(f"bearer {token(role='sre')}").role == "sre"


def test_eddsa_and_rs256_by_kid() -> None:
    a = auth(**PROD)
    ed = jwt.encode(claims(), ED_KEY, algorithm="EdDSA", headers={"kid": "ed-1"})
    rs = jwt.encode(claims(tier="internal"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    assert a.authenticate(f"Bearer {ed}").sub == "alice"
    assert a.authenticate(f"Bearer {rs}").tier == "internal"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer a.b"])
def test_missing_or_malformed(header: str | None) -> None:
    rejects(auth(), header)


def test_expired_beyond_leeway_but_not_within() -> None:
    now = int(time.time())
    assert "expired" in rejects(auth(), f"Bearer {token(exp=now - 60)}")
    assert auth().authenticate(f"Bearer {token(exp=now - 10)}").sub == "alice"


def test_not_yet_valid() -> None:
    assert "nbf" in rejects(auth(), f"Bearer {token(nbf=int(time.time()) + 120)}")


def test_forged_signature() -> None:
    rejects(auth(), f"Bearer {token(secret='x' * 40)}")
    good = token()
    head, body, sig = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(body + "=="))
    tampered["tier"] = "internal"
    body2 = base64.urlsafe_b64encode(json.dumps(tampered).encode()).decode().rstrip("=")
    rejects(auth(), f"Bearer {head}.{body2}.{sig}")


def test_alg_none_rejected() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]
    assert "not accepted" in rejects(auth(**MIXED), f"Bearer {unsigned}")


def test_hs256_signed_with_the_public_key_is_rejected() -> None:
    """Key confusion: the attacker knows the public key and HMACs with it."""
    pem = ED_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rsa_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for key, kid in ((pem, "ed-1"), (rsa_pem, "rsa-1")):
        forged = _hmac_jwt(claims(tier="internal"), key, kid)
        rejects(auth(**PROD), f"Bearer {forged}")  # HS256 not accepted at all
        rejects(auth(**MIXED), f"Bearer {forged}")  # accepted alg, but checked with the secret


def _hmac_jwt(payload: dict[str, Any], key: bytes, kid: str) -> str:
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    signing = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}." \
              f"{b64(json.dumps(payload).encode())}"
    return f"{signing}.{b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())}"


def test_wrong_audience_and_issuer() -> None:
    assert "audience" in rejects(auth(), f"Bearer {token(aud='other')}")
    assert "issuer" in rejects(auth(), f"Bearer {token(iss='evil')}")


def test_unknown_or_missing_kid() -> None:
    a = auth(**PROD)
    other = jwt.encode(claims(), ED_KEY, algorithm="EdDSA", headers={"kid": "nope"})
    assert "kid" in rejects(a, f"Bearer {other}")
    assert "kid" in rejects(a, f"Bearer {jwt.encode(claims(), ED_KEY, algorithm='EdDSA')}")
    # A kid that exists but names a key of another algorithm.
    cross = jwt.encode(claims(), ED_KEY, algorithm="EdDSA", headers={"kid": "rsa-1"})
    rejects(a, f"Bearer {cross}")


def test_embedded_jwk_and_jku_headers_are_ignored() -> None:
    attacker_jwk = json.loads(OKPAlgorithm.to_jwk(ATTACKER.public_key()))
    for extra in ({"jwk": attacker_jwk}, {"jku": "https://evil.test/jwks.json"},
                  {"x5u": "https://evil.test/cert.pem"}):
        forged = jwt.encode(claims(tier="internal"), ATTACKER, algorithm="EdDSA",
                            headers={"kid": "ed-1", **extra})
        rejects(auth(**PROD), f"Bearer {forged}")


@pytest.mark.parametrize("bad", [
    {"tier": None}, {"tier": "gold"}, {"role": "root"}, {"sub": None}, {"sub": ""},
    {"sub": 42}, {"exp": None}, {"aud": None}, {"iss": None},
])
def test_bad_claims(bad: dict[str, Any]) -> None:
    rejects(auth(), f"Bearer {token(**bad)}")


@pytest.mark.parametrize("sub", ["a\x00b", "\x00", "bob\n", "a\nb", "a\rb", "a\x1bb", "a\x85b"])
def test_a_sub_with_control_characters_is_refused(sub: str) -> None:
    """The sub is stored as text (Postgres refuses U+0000) and logged (a newline forges a
    line): 401 with the reason, not a 500 from central's driver."""
    assert "control characters" in rejects(auth(), f"Bearer {token(sub)}")


def test_token_size_capped() -> None:
    assert "too large" in rejects(auth(), f"Bearer {token(pad='x' * 9000)}")


def test_settings_refuse_unsafe_configurations() -> None:
    with pytest.raises(ValueError):
        make_settings(jwt_hs256_secret="short")
    with pytest.raises(ValueError):
        make_settings(jwt_algorithms=("none",))
    with pytest.raises(ValueError):
        make_settings(jwt_algorithms=("EdDSA",), jwt_jwks=None)
    oct_jwks = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]})
    with pytest.raises(ValueError):
        auth(jwt_algorithms=("EdDSA",), jwt_jwks=oct_jwks)


async def test_401_through_the_pipeline_is_a_problem_with_challenge(rig: Rig) -> None:
    r = await rig.call("GET", "/v1/twins/t1", token=token(secret=HS_SECRET[::-1] + "x"))
    assert r.status == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer ")
    body = msgspec.json.decode(r.body)
    assert body["status"] == 401 and body["request_id"] == r.headers["x-request-id"]
    assert r.headers["x-served-by"] == "edge=ams"
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= r.headers.keys()
    assert rig.hubs.seen == []


def test_verified_tokens_are_remembered_only_until_their_own_expiry() -> None:
    now = [time.time()]
    a = Authenticator(make_settings(), wall_clock=lambda: now[0])
    checks: list[str] = []
    real_check = a._check

    def counting(tok: str) -> Any:
        checks.append(tok)
        return real_check(tok)

    a._check = counting  # type: ignore[method-assign]
    t = token(exp=int(now[0]) + 100)
    for _ in range(3):
        assert a.authenticate(f"Bearer {t}").sub == "alice"
    assert len(checks) == 1
    now[0] += 100 + 30 + 1  # past exp + leeway: verified afresh (PyJWT's clock decides)
    a.authenticate(f"Bearer {t}")
    assert len(checks) == 2
    # A different string (even the same claims re-signed) is never answered from the memo.
    rejects(a, f"Bearer {t[:-2]}xx")


def test_memo_is_bounded() -> None:
    from mbedge import auth as auth_module

    a = auth()
    for i in range(auth_module.VERIFIED_CACHE_SIZE + 10):
        a.authenticate(f"Bearer {token(f'u{i}')}")
    assert len(a._verified) == auth_module.VERIFIED_CACHE_SIZE
