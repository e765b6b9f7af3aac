"""The deployment files agree with the region catalog: wrangler.toml's hub URLs per environment
are exactly ``hub_urls(env)``, and its rate-limit bindings are the contract's tiers."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from georouting import DEFAULT_REGIONS, PRIMARY_REGION, REGIONS, check_regions, hub_urls
from mbwire.types import TIER_LIMITS_PER_MINUTE

ROOT = Path(__file__).resolve().parents[3]
WRANGLER = tomllib.loads((ROOT / "wrangler.toml").read_text())
ENVIRONMENTS = ("production", "staging")
BINDINGS = {"RL_FREE": "free", "RL_PRO": "pro", "RL_ENTERPRISE": "enterprise",
            "RL_INTERNAL": "internal"}


def test_catalog_is_consistent() -> None:
    assert check_regions(DEFAULT_REGIONS) == DEFAULT_REGIONS
    assert PRIMARY_REGION in DEFAULT_REGIONS
    assert all(r.id == key for key, r in REGIONS.items())


def test_worker_entry_and_runtime() -> None:
    assert WRANGLER["main"] == "edge/entry.py"
    assert "python_workers" in WRANGLER["compatibility_flags"]
    assert WRANGLER["compatibility_date"] >= "2026-09-08"
    assert WRANGLER["triggers"]["crons"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hub_urls_match_the_catalog(env: str) -> None:
    hubs = json.loads(WRANGLER["env"][env]["vars"]["EDGE_HUBS"])
    assert hubs == hub_urls(env, tuple(hubs))
    assert tuple(sorted(hubs)) == tuple(sorted(DEFAULT_REGIONS))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rate_limit_bindings_match_the_tiers(env: str) -> None:
    found = {b["name"]: b for b in WRANGLER["env"][env]["ratelimits"]}
    for name, tier in BINDINGS.items():
        assert found[name]["simple"] == {"limit": TIER_LIMITS_PER_MINUTE[tier], "period": 60}
    assert "RL_ANONYMOUS" in found
    assert any(kv["binding"] == "EDGE_STATE" for kv in WRANGLER["env"][env]["kv_namespaces"])


def test_namespace_ids_are_unique_across_environments() -> None:
    ids = [b["namespace_id"] for env in ENVIRONMENTS for b in WRANGLER["env"][env]["ratelimits"]]
    assert len(ids) == len(set(ids))


def test_no_secret_values_in_wrangler_toml() -> None:
    for env in ENVIRONMENTS:
        names = set(WRANGLER["env"][env]["vars"])
        assert not names & {"EDGE_HOP_SECRET", "EDGE_JWT_HS256_SECRET", "EDGE_JWT_JWKS"}


FLY_HUB = tomllib.loads((ROOT / "fly.toml").read_text())
FLY_CENTRAL = tomllib.loads((ROOT / "central" / "fly.toml").read_text())


def test_fly_apps_agree_with_the_catalog() -> None:
    assert FLY_HUB["env"]["HUB_REGIONS"].split(",") == list(DEFAULT_REGIONS)
    assert FLY_HUB["env"]["HUB_PRIMARY_REGION"] == PRIMARY_REGION
    assert FLY_CENTRAL["env"]["CENTRAL_REGIONS"].split(",") == list(DEFAULT_REGIONS)
    assert FLY_CENTRAL["primary_region"] == FLY_CENTRAL["env"]["CENTRAL_PRIMARY_REGION"]
    assert FLY_CENTRAL["primary_region"] == PRIMARY_REGION
    # One hub app per region, named as the edge addresses it in production.
    template = "https://{app}.fly.dev"
    assert template.format(app=FLY_HUB["app"]) == hub_urls("production")[FLY_HUB["primary_region"]]


def test_the_dev_stack_defaults_to_the_catalog() -> None:
    from devstack.launcher import DEFAULT_REGIONS as stack_default

    assert stack_default == DEFAULT_REGIONS
