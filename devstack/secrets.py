"""A stack's secrets and the dev tokens signed with them.

Generated once per data directory and kept in ``DATA_DIR/secrets.json`` (mode 0600), so tokens
minted yesterday still verify after a ``down``/``up``. Three independent keys:

- ``edge_hop_secret``: the edge signs hops to the hubs with it
  (``EDGE_HOP_SECRET`` = ``HUB_HOP_SECRET``);
- ``central_hop_secret``: hubs sign hops to central with it
  (``HUB_CENTRAL_SECRET`` = ``CENTRAL_HOP_SECRET``);
- ``jwt_hs256_secret``: the dev key the edge verifies client JWTs with (``EDGE_JWT_HS256_SECRET``);
- ``artifact_url_secret``: central and the hubs sign and check artifact URLs with it
  (``CENTRAL_ARTIFACT_URL_SECRET`` = ``HUB_ARTIFACT_URL_SECRET``). Added later: a data directory
  made before it gets one on its next ``up``.
"""

from __future__ import annotations

import os
import secrets as _random
import time
from pathlib import Path
from typing import get_args

import jwt
import msgspec

from devstack.errors import StackError
from mbwire.types import Role, Tier

SECRETS_FILE = "secrets.json"
JWT_AUDIENCE = "memory-bank"
JWT_ISSUER = "memorybank-dev"
TIERS: tuple[str, ...] = get_args(Tier)
ROLES: tuple[str, ...] = get_args(Role)
# Dev tokens are bearer secrets that cannot be revoked: a month is long enough for any session
# against a local stack and short enough that a leaked one dies.
MAX_TTL_S = 30 * 24 * 3600


class Secrets(msgspec.Struct, frozen=True, kw_only=True):
    edge_hop_secret: str
    central_hop_secret: str
    jwt_hs256_secret: str
    artifact_url_secret: str = ""
    # The audit trail's key (mbwire.audit): twins' pseudonyms and checkpoint signatures.
    audit_key: str = ""

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            edge_hop_secret=_random.token_urlsafe(32),
            central_hop_secret=_random.token_urlsafe(32),
            jwt_hs256_secret=_random.token_urlsafe(32),
            artifact_url_secret=_random.token_urlsafe(32),
            audit_key=_random.token_urlsafe(32),
        )


def load(data_dir: Path) -> Secrets | None:
    """The data directory's secrets, or None if no ``up`` ever made them (nothing is created)."""
    path = data_dir / SECRETS_FILE
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=Secrets)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise StackError(f"{path} is not a Memory Bank secrets file: {exc}") from None


def load_or_create(data_dir: Path) -> Secrets:
    """The data directory's secrets, generating and storing them on first use (only ``up``)."""
    path = data_dir / SECRETS_FILE
    if (existing := load(data_dir)) is not None:
        # Made before artifacts or the audit trail: add their keys, keep the rest.
        if not existing.artifact_url_secret or not existing.audit_key:
            existing = msgspec.structs.replace(
                existing, artifact_url_secret=existing.artifact_url_secret
                or _random.token_urlsafe(32), audit_key=existing.audit_key
                or _random.token_urlsafe(32))
            _write(path, existing)
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = Secrets.generate()
    # O_EXCL: if another `up` raced us here, its file wins and we read it back below.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raced = load(data_dir)
        assert raced is not None  # the file that beat our O_EXCL
        return raced
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(fresh)))
    return fresh


def mint_token(
    secret: str,
    sub: str,
    *,
    tier: str = "free",
    role: str = "agent",
    ttl: int = 3600,
    now: float | None = None,
) -> str:
    """An HS256 JWT as the local edge expects it (aud ``memory-bank``, iss ``memorybank-dev``)."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not 0 < ttl <= MAX_TTL_S:
        raise ValueError(f"ttl must be from 1 to {MAX_TTL_S} seconds (30 days), not {ttl}")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": sub,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "aud": JWT_AUDIENCE,
        "iss": JWT_ISSUER,
        "tier": tier,
        "role": role,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def _write(path: Path, value: Secrets) -> None:
    """Replaces the file atomically, 0600 from the start."""
    tmp = path.with_name(f".{path.name}.{_random.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(value)))
    os.replace(tmp, path)
