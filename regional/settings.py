"""A hub's settings: one frozen Struct, read from ``HUB_*`` environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec


class HubSettings(msgspec.Struct, frozen=True, kw_only=True):
    region: str
    replica_url: str
    redis_url: str
    central_url: str
    hop_secret: str          # what the edge signs with; the hub verifies it
    central_secret: str      # what the hub signs its calls to central with
    limits_redis_url: str = ""   # the fleet-wide limiter's Redis; empty = this hub's own
    regions: str = "ams,iad,sin"
    primary_region: str = "ams"
    # How long a read waits for its consistency token. Below the edge's per-hub attempt timeout
    # (EdgeSettings.attempt_timeout_s, 1.5 s), so a hub waiting on purpose answers 503 itself
    # before the edge would time it out and count it as sick.
    token_wait_ms: int = 1000
    cache_ttl_s: int = 300
    cache_reads: bool = True      # off only to measure uncached reads (bench/spine_bench.py)
    central_timeout_s: float = 10.0
    max_body_bytes: int = 1 << 20

    @property
    def region_list(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions.split(",") if r)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> HubSettings:
        """``HUB_*`` variables; on Fly.io the region defaults to ``FLY_REGION``, and a
        ``{region}`` in a URL is filled in, so one set of app-wide secrets serves every region."""
        raw = {
            k.removeprefix("HUB_").lower(): v for k, v in environ.items() if k.startswith("HUB_")
        }
        if "region" not in raw and "FLY_REGION" in environ:
            raw["region"] = environ["FLY_REGION"]
        region = raw.get("region", "")
        for key in ("replica_url", "redis_url"):
            if key in raw:
                raw[key] = raw[key].replace("{region}", region)
        return msgspec.convert(raw, cls, strict=False)
