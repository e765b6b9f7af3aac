"""Bearer JWT → ``Principal``, per the contract.

The rules that keep this safe, each enforced below:
- The accepted algorithms come from settings. The token's ``alg`` only selects among them, and
  selects the key *family*: HS256 always verifies with the configured secret, EdDSA / RS256 always
  with a public key looked up by ``kid`` in the configured JWKS. So ``alg: none`` is refused, and
  an HS256 token "signed" with a public key (key confusion) is checked against the secret and fails.
- ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never read: keys come only from settings.
- Size is capped before any parsing; exp, nbf, aud and iss are checked with a small leeway.

Agents send the same token for many requests, so a verified token is remembered (by the SHA-256
of its exact bytes, never the token itself) until its own ``exp`` plus the leeway: the verdict on
a given string can only change with time, and keys are fixed for the life of the process. This
halves the CPU of a cache hit, which matters most in the Worker's per-request CPU budget."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, get_args

import jwt
import msgspec

from mbedge.settings import ASYMMETRIC, EdgeSettings
from mbwire import Principal, Unauthorized
from mbwire.types import SUB_MAX_LENGTH, SUB_PATTERN, Role, Tier

REQUIRED_CLAIMS = ["sub", "exp", "aud", "iss", "tier"]
TIERS: frozenset[str] = frozenset(get_args(Tier))
ROLES: frozenset[str] = frozenset(get_args(Role))
MAX_SUB_LENGTH = SUB_MAX_LENGTH
_SUB = re.compile(SUB_PATTERN)
VERIFIED_CACHE_SIZE = 4096


def load_jwks(document: str, allowed: frozenset[str]) -> dict[str, jwt.PyJWK]:
    """kid -> key for every signing key in the document whose algorithm is allowed. Symmetric
    (``oct``) keys are refused: an HS key published by kid would reopen key confusion."""
    keys: dict[str, jwt.PyJWK] = {}
    for entry in json.loads(document).get("keys", []):
        if entry.get("kty") == "oct":
            raise ValueError("EDGE_JWT_JWKS must hold public keys only (found an 'oct' key)")
        if entry.get("use", "sig") != "sig" or not entry.get("kid"):
            continue
        key = jwt.PyJWK(entry)
        if key.algorithm_name in allowed:
            keys[str(entry["kid"])] = key
    return keys


class Authenticator:
    def __init__(
        self, settings: EdgeSettings, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._algorithms = frozenset(settings.jwt_algorithms)
        self._secret = settings.jwt_hs256_secret
        self._keys = (
            load_jwks(settings.jwt_jwks, self._algorithms & ASYMMETRIC)
            if settings.jwt_jwks else {}
        )
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_s
        self._max_bytes = settings.max_token_bytes
        self._now = wall_clock
        # sha256(token) -> (principal, unix time after which the token is refused)
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    def authenticate(self, authorization: str | None) -> Principal:
        return self.authenticate_until(authorization)[0]

    def authenticate_until(self, authorization: str | None) -> tuple[Principal, float]:
        """The principal and the unix time after which its token is refused (``exp`` plus the
        leeway): how long a realtime socket opened with it may live."""
        token = self._bearer(authorization)
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if self._now() < known[1]:
                self._verified.move_to_end(digest)
                return known
            del self._verified[digest]
        principal, claims = self._check(token)
        verified = self._verified[digest] = (principal, float(claims["exp"]) + self._leeway)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    def _check(self, token: str) -> tuple[Principal, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise Unauthorized(f"token algorithm {str(alg)[:20]!r} is not accepted")
        claims = self._verify(token, alg, header)
        return self._principal(claims), claims

    def _bearer(self, authorization: str | None) -> str:
        if not authorization:
            raise Unauthorized("missing bearer token (Authorization: Bearer <JWT>)")
        if len(authorization) > self._max_bytes + 7:
            raise Unauthorized("bearer token too large")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <JWT>'")
        return token.strip()

    def _verify(self, token: str, alg: str, header: dict[str, Any]) -> dict[str, Any]:
        key: jwt.PyJWK | str
        if alg in ASYMMETRIC:
            kid = header.get("kid")
            found = self._keys.get(kid) if isinstance(kid, str) else None
            if found is None or found.algorithm_name != alg:
                raise Unauthorized("unknown signing key (kid)")
            key = found
        else:
            assert self._secret is not None  # settings refuse HS256 without a secret
            key = self._secret
        try:
            return jwt.decode(
                token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"token audience must be {self._audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not trusted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token signature does not verify") from None
        except jwt.PyJWTError:
            raise Unauthorized("token is malformed or its key does not fit") from None

    @staticmethod
    def _principal(claims: dict[str, Any]) -> Principal:
        sub, tier, role = claims.get("sub"), claims.get("tier"), claims.get("role", "agent")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH:
            raise Unauthorized("token 'sub' must be a non-empty string of at most 256 characters")
        if not _SUB.match(sub):
            # The sub is stored as text and logged: a control character (a NUL, a newline) in
            # it would break the store or forge a log line, and no identity provider sends one.
            raise Unauthorized("token 'sub' must not contain control characters")
        if tier not in TIERS:
            raise Unauthorized(f"token 'tier' must be one of {', '.join(sorted(TIERS))}")
        if role not in ROLES:
            raise Unauthorized(f"token 'role' must be one of {', '.join(sorted(ROLES))}")
        return msgspec.convert({"sub": sub, "tier": tier, "role": role}, Principal)
