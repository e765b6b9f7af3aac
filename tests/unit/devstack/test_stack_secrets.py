"""Dev secrets and tokens: claims as the edge expects them; secrets made once, private."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest

from devstack.secrets import SECRETS_FILE, load_or_create, mint_token

KEY = "k" * 43


def decode(token: str, *, verify_exp: bool = True) -> dict[str, object]:
    return jwt.decode(token, KEY, algorithms=["HS256"], audience="memory-bank",
                      issuer="memorybank-dev", options={"verify_exp": verify_exp})


def test_token_claims() -> None:
    token = mint_token(KEY, "alice", tier="pro", role="sre", ttl=600, now=1_000_000_000)
    assert decode(token, verify_exp=False) == {
        "sub": "alice", "iat": 1_000_000_000, "nbf": 1_000_000_000, "exp": 1_000_000_600,
        "aud": "memory-bank", "iss": "memorybank-dev", "tier": "pro", "role": "sre",
    }
    assert jwt.get_unverified_header(mint_token(KEY, "a"))["alg"] == "HS256"


def test_token_defaults_and_current_time() -> None:
    claims = decode(mint_token(KEY, "bob"))
    assert (claims["tier"], claims["role"]) == ("free", "agent")
    assert claims["exp"] == claims["iat"] + 3600  # type: ignore[operator]


def test_expired_token_is_refused_by_a_verifier() -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        decode(mint_token(KEY, "old", ttl=60, now=1_000_000_000))


@pytest.mark.parametrize("bad", [{"tier": "gold"}, {"role": "root"}, {"ttl": 0}])
def test_bad_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        mint_token(KEY, "x", **bad)  # type: ignore[arg-type]


def test_secrets_made_once_and_private(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "stack")
    again = load_or_create(tmp_path / "stack")
    assert first == again
    assert len({first.edge_hop_secret, first.central_hop_secret, first.jwt_hs256_secret}) == 3
    mode = (tmp_path / "stack" / SECRETS_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
