"""The edge's settings: one frozen Struct, read from ``EDGE_*`` variables in one place.

The Worker reads the same names from ``self.env`` (``[vars]`` and secrets in wrangler.toml), the
local edge from the process environment, so a setting means the same thing in both.

Cells (``mbwire.cells``): ``EDGE_CELLS`` is the fleet's catalog, a JSON list of
``{"name", "zone", "regions"}`` (empty: the single home cell over ``EDGE_HUBS``' regions, the
service as it was); ``EDGE_HUBS`` stays the home cell's hubs, ``{region: url}``, and
``EDGE_CELL_HUBS`` holds every other cell's, ``{cell: {region: url}}``. A cell's hubs stand only
in the regions the catalog lists for it, so an edge never sends a pinned twin's request to a
hub outside its zone."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

from georouting import PRIMARY_REGION, REGIONS, Point, check_regions
from georouting.geo import region_point
from mbwire.cells import Cell, CellMap
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
    # region -> hub base URL of the home cell (EDGE_HUBS is a JSON object).
    hubs: dict[str, str]
    # The cell catalog (EDGE_CELLS, a JSON list; empty: the home cell alone over ``hubs``).
    cells: tuple[Cell, ...] = ()
    # cell -> region -> hub base URL, for every cell but the home cell (EDGE_CELL_HUBS).
    cell_hubs: dict[str, dict[str, str]] = {}
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
        self._check_cells()
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
    def cell_map(self) -> CellMap:
        """The fleet's cells (``EDGE_CELLS``), or the home cell alone over ``hubs``' regions."""
        return CellMap(cells=self.cells) if self.cells else CellMap.single(tuple(self.hubs))

    def hubs_of(self, cell: str) -> dict[str, str]:
        """A cell's hubs, region -> base URL: ``hubs`` for the home cell."""
        if cell == self.cell_map.home.name:
            return self.hubs
        return self.cell_hubs.get(cell, {})

    def _check_cells(self) -> None:
        cells = self.cell_map  # ValueError for a catalog mbwire.cells refuses
        home = cells.home.name
        names = {c.name for c in cells.cells}
        stray = sorted(n for n in self.cell_hubs if n not in names or n == home)
        if stray:
            raise ValueError(f"EDGE_CELL_HUBS names {stray}: not a cell of EDGE_CELLS other "
                             f"than the home cell {home!r} (whose hubs are EDGE_HUBS)")
        for cell in cells.cells:
            hubs = self.hubs_of(cell.name)
            where = "EDGE_HUBS" if cell.name == home else f"EDGE_CELL_HUBS[{cell.name!r}]"
            if not hubs:
                raise ValueError(f"cell {cell.name} has no hubs: list them in {where}")
            check_regions(tuple(hubs))
            for region, url in hubs.items():
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"hub URL for {region} must be http(s): {url!r}")
            if cell.pinned and not cell.regions:
                raise ValueError(f"cell {cell.name} of zone {cell.zone} must list its regions "
                                 "in EDGE_CELLS")
            outside = sorted(set(hubs) - set(cell.regions)) if cell.regions else []
            if outside:
                raise ValueError(f"{where} has hubs in {outside}, outside cell {cell.name}'s "
                                 f"regions {list(cell.regions)}")

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
        for name in ("hubs", "cells", "cell_hubs"):
            if isinstance(raw.get(name), str):
                raw[name] = json.loads(str(raw[name]))
        if isinstance(raw.get("jwt_algorithms"), str):
            algs = str(raw["jwt_algorithms"])
            raw["jwt_algorithms"] = [a.strip() for a in algs.split(",") if a.strip()]
        if "dev_mode" in raw:
            raw["dev_mode"] = str(raw["dev_mode"]).strip().lower() in ("1", "true", "yes", "on")
        raw.pop("state", None)
        return msgspec.convert(raw, cls, strict=False)
