"""The edge's settings: one frozen Struct, read from ``EDGE_*`` variables in one place.

The Worker reads the same names from ``self.env`` (``[vars]`` and secrets in wrangler.toml), the
local edge from the process environment, so a setting means the same thing in both."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

from georouting import PRIMARY_REGION, REGIONS, Point, check_regions
from georouting.geo import region_point
from mbwire.envcheck import check_known

Seconds = Annotated[float, msgspec.Meta(gt=0)]

# Algorithms the edge knows how to key; the deployment picks a subset (never the token).
SUPPORTED_ALGORITHMS = frozenset({"HS256", "EdDSA", "RS256"})
ASYMMETRIC = frozenset({"EdDSA", "RS256"})
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32
# EDGE_-named variables that are not settings: the Worker's KV binding (wrangler.toml).
NOT_SETTINGS = frozenset({"EDGE_STATE"})


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    # The PoP's name in X-Served-By; locally a region code, which also gives the default origin.
    pop: str = PRIMARY_REGION
    # region -> hub base URL (EDGE_HUBS is a JSON object).
    hubs: dict[str, str]
    hop_secret: str
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_hs256_secret: str | None = None
    # A JWKS document ({"keys": [...]}) holding the EdDSA / RS256 public keys, by kid.
    jwt_jwks: str | None = None
    jwt_issuer: str = "memorybank-dev"
    jwt_audience: str = "memory-bank"
    jwt_leeway_s: float = 30.0
    max_token_bytes: int = 8192
    # Honour X-Debug-Geo. Never in production: it lets a caller pick its hub.
    dev_mode: bool = False
    cache_ttl_s: Seconds = 5.0
    # Reads: the whole request may take this long, across failovers; one hub at most
    # ``attempt_timeout_s`` of it unless it is the last one left.
    read_budget_s: Seconds = 3.0
    attempt_timeout_s: Seconds = 1.5
    # Writes usually get one hub (a retry could apply them twice), so one generous timeout.
    write_budget_s: Seconds = 10.0
    probe_timeout_s: Seconds = 1.0
    failure_threshold: int = 2
    cooldown_s: Seconds = 5.0
    # A ceiling over every action's own limit (the table's max_body): Cloudflare's Free and Pro
    # plans accept request bodies up to 100 MB.
    max_body_bytes: int = 100 * 1024 * 1024
    # Callers that failed to authenticate share a per-address bucket: it caps what a flood of
    # bad tokens costs in signature checks without ever throttling a real principal.
    anonymous_limit_per_minute: int = 600

    def __post_init__(self) -> None:
        check_regions(tuple(self.hubs))
        for region, url in self.hubs.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"hub URL for {region} must be http(s): {url!r}")
        if len(self.hop_secret) < 16:
            raise ValueError("EDGE_HOP_SECRET must be at least 16 characters")
        unknown = set(self.jwt_algorithms) - SUPPORTED_ALGORITHMS
        if unknown or not self.jwt_algorithms:
            raise ValueError(
                f"EDGE_JWT_ALGORITHMS must be a subset of {sorted(SUPPORTED_ALGORITHMS)}"
            )
        if "HS256" in self.jwt_algorithms and (
            not self.jwt_hs256_secret
            or len(self.jwt_hs256_secret.encode()) < MIN_HS256_SECRET_BYTES
        ):
            raise ValueError("HS256 needs EDGE_JWT_HS256_SECRET of at least 32 bytes")
        if ASYMMETRIC & set(self.jwt_algorithms) and not self.jwt_jwks:
            raise ValueError("EdDSA/RS256 need EDGE_JWT_JWKS (a JWKS document)")

    @property
    def home(self) -> Point:
        """Where the PoP stands: the default caller location when the runtime gives none."""
        return region_point(self.pop if self.pop in REGIONS else PRIMARY_REGION)

    @classmethod
    def from_env(cls, environ: Mapping[str, str | None] | None = None) -> EdgeSettings:
        env = os.environ if environ is None else environ
        known = {f"EDGE_{f.upper()}" for f in cls.__struct_fields__} | NOT_SETTINGS
        check_known("EDGE_", env, known)
        raw: dict[str, object] = {
            k.removeprefix("EDGE_").lower(): v
            for k, v in env.items()
            if k.startswith("EDGE_") and v not in (None, "")
        }
        if isinstance(raw.get("hubs"), str):
            raw["hubs"] = json.loads(str(raw["hubs"]))
        if isinstance(raw.get("jwt_algorithms"), str):
            algs = str(raw["jwt_algorithms"])
            raw["jwt_algorithms"] = [a.strip() for a in algs.split(",") if a.strip()]
        if "dev_mode" in raw:
            raw["dev_mode"] = str(raw["dev_mode"]).strip().lower() in ("1", "true", "yes", "on")
        raw.pop("state", None)
        return msgspec.convert(raw, cls, strict=False)
