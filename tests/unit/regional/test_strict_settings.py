"""A mistyped setting fails at start, named, with the closest known name; other prefixes and
the Worker's bindings pass."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.settings import CentralSettings
from georouting.catalog import hub_urls
from mbedge.settings import EdgeSettings
from regional.settings import HubSettings
from tests.unit.regional.test_settings import HUB_ENV

EDGE_ENV = {
    "EDGE_HUBS": '{"ams": "http://127.0.0.1:1"}',
    "EDGE_HOP_SECRET": "h" * 32,
    "EDGE_JWT_HS256_SECRET": "j" * 32,
}
CENTRAL_ENV = {"CENTRAL_DATABASE_URL": "postgresql://x/y", "CENTRAL_HOP_SECRET": "x" * 32}


def test_hub_refuses_a_typo_and_suggests_the_name() -> None:
    with pytest.raises(ValueError, match=r"HUB_TOKEN_WAIT \(did you mean HUB_TOKEN_WAIT_MS\?\)"):
        HubSettings.from_env({**HUB_ENV, "HUB_REGION": "ams", "HUB_TOKEN_WAIT": "10"})


def test_central_refuses_a_typo() -> None:
    with pytest.raises(ValueError, match=r"CENTRAL_RESIDENT_BYTE .*CENTRAL_RESIDENT_BYTES"):
        CentralSettings.from_env({**CENTRAL_ENV, "CENTRAL_RESIDENT_BYTE": "5"})


def test_edge_refuses_a_typo_even_when_empty() -> None:
    with pytest.raises(ValueError, match=r"EDGE_COOLDOWN .*EDGE_COOLDOWN_S"):
        EdgeSettings.from_env({**EDGE_ENV, "EDGE_COOLDOWN": ""})


def test_every_unknown_name_is_listed() -> None:
    with pytest.raises(ValueError) as info:
        HubSettings.from_env({**HUB_ENV, "HUB_REGION": "ams", "HUB_A": "1", "HUB_ZZZ": "2"})
    assert "HUB_A" in str(info.value) and "HUB_ZZZ" in str(info.value)


def test_other_prefixes_and_worker_bindings_pass() -> None:
    env = {**EDGE_ENV, "EDGE_STATE": "<kv binding>", "HUB_X": "1", "RL_FREE": "binding"}
    assert EdgeSettings.from_env(env).hubs == {"ams": "http://127.0.0.1:1"}
    assert CentralSettings.from_env({**CENTRAL_ENV, "HUB_X": "1", "EDGE_Y": "2"}).regions


def test_hub_peers_are_json() -> None:
    settings = HubSettings.from_env(
        {**HUB_ENV, "HUB_REGION": "ams", "HUB_PEERS": '{"iad": "http://127.0.0.1:9"}'})
    assert settings.peers == {"iad": "http://127.0.0.1:9"}


@given(st.sampled_from(sorted(HubSettings.__struct_fields__)), st.text("XYZ_", min_size=1))
def test_any_name_outside_the_struct_is_refused(field: str, suffix: str) -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        HubSettings.from_env({**HUB_ENV, "HUB_REGION": "ams", f"HUB_{field.upper()}{suffix}": "1"})


def test_fly_hub_env_is_known_and_names_every_peer() -> None:
    fly = tomllib.loads((Path(__file__).parents[3] / "fly.toml").read_text())
    secrets = {"HUB_REGION": "ams", "HUB_REPLICA_URL": "postgresql://r/x",
               "HUB_REDIS_URL": "redis://r", "HUB_HOP_SECRET": "h" * 32,
               "HUB_CENTRAL_SECRET": "c" * 32, "HUB_LIMITS_REDIS_URL": "redis://l"}
    settings = HubSettings.from_env({**fly["env"], **secrets})
    assert settings.peers == hub_urls("production") == json.loads(fly["env"]["HUB_PEERS"])
