"""Settings come from the environment in one place, with Fly.io's conventions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from central.settings import CentralSettings
from knowledge.embed import QueryCache
from knowledge.embed_local import LocalEmbedder
from regional.index_service import IndexService
from regional.search import hub_embedder
from regional.settings import HubSettings

HUB_ENV = {
    "HUB_REPLICA_URL": "postgresql://u@{region}.db.internal:5433/memorybank",
    "HUB_REDIS_URL": "redis://{region}.redis.internal:6379/0",
    "HUB_CENTRAL_URL": "http://central:8080",
    "HUB_HOP_SECRET": "s" * 32,
    "HUB_CENTRAL_SECRET": "c" * 32,
    "HUB_TOKEN_WAIT_MS": "1500",
    "HUB_CACHE_READS": "false",
    "UNRELATED": "x",
}


def test_hub_settings_take_fly_region_and_fill_urls() -> None:
    settings = HubSettings.from_env({**HUB_ENV, "FLY_REGION": "sin"})
    assert settings.region == "sin"
    assert settings.replica_url == "postgresql://u@sin.db.internal:5433/memorybank"
    assert settings.redis_url == "redis://sin.redis.internal:6379/0"
    assert settings.token_wait_ms == 1500 and settings.cache_reads is False


def test_explicit_hub_region_wins_over_fly_region() -> None:
    settings = HubSettings.from_env({**HUB_ENV, "HUB_REGION": "ams", "FLY_REGION": "sin"})
    assert settings.region == "ams"


def test_missing_or_malformed_settings_fail_at_start() -> None:
    with pytest.raises(msgspec.ValidationError, match="region"):
        HubSettings.from_env(HUB_ENV)
    with pytest.raises(msgspec.ValidationError, match="token_wait_ms"):
        HubSettings.from_env({**HUB_ENV, "HUB_REGION": "ams", "HUB_TOKEN_WAIT_MS": "soon"})
    with pytest.raises(msgspec.ValidationError, match="database_url"):
        CentralSettings.from_env({"CENTRAL_HOP_SECRET": "x" * 32})


def test_central_settings_regions() -> None:
    settings = CentralSettings.from_env({"CENTRAL_DATABASE_URL": "postgresql://x/y",
                                         "CENTRAL_HOP_SECRET": "x" * 32,
                                         "CENTRAL_REGIONS": "ams,sin"})
    assert settings.region_list == ("ams", "sin")


def test_hub_embeds_queries_on_the_threads_its_setting_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread unless told (bench/embed_bench.py weighs it); 0 is one per core."""
    monkeypatch.setenv("MEMORYBANK_MODEL_CACHE", str(tmp_path))
    base = {**HUB_ENV, "HUB_REGION": "ams"}
    for env, threads in (({}, 1), ({"HUB_EMBEDDER_THREADS": "2"}, 2),
                         ({"HUB_EMBEDDER_THREADS": "0"}, 0)):
        embedder = hub_embedder(HubSettings.from_env({**base, **env}))
        assert isinstance(embedder, QueryCache) and isinstance(embedder.inner, LocalEmbedder)
        assert embedder.inner._session.get_session_options().intra_op_num_threads == threads
    with pytest.raises(msgspec.ValidationError, match="embedder_threads"):
        HubSettings.from_env({**base, "HUB_EMBEDDER_THREADS": "-1"})


def test_hub_embeds_queries_in_int8_unless_told_float(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORYBANK_MODEL_CACHE", str(tmp_path))
    base = {**HUB_ENV, "HUB_REGION": "ams"}
    for env, compute in (({}, "int8"), ({"HUB_EMBEDDER_COMPUTE": "float"}, "float")):
        embedder = hub_embedder(HubSettings.from_env({**base, **env}))
        assert isinstance(embedder, QueryCache) and isinstance(embedder.inner, LocalEmbedder)
        assert embedder.inner.compute == compute
    assert any(tmp_path.glob("*.onnx"))             # the int8 graph, derived where it was told
    with pytest.raises(msgspec.ValidationError, match="embedder_compute"):
        HubSettings.from_env({**base, "HUB_EMBEDDER_COMPUTE": "fp16"})


def test_the_index_service_polls_and_steps_at_its_setting() -> None:
    """HUB_INDEX_STEP_MS sets both the index service's clock nap and its follower's interval
    (200 ms unless told); a nap of nothing (a poll loop) is refused at start."""
    base = {**HUB_ENV, "HUB_REGION": "ams"}
    for env, step_s in (({}, 0.2), ({"HUB_INDEX_STEP_MS": "500"}, 0.5)):
        service = IndexService(HubSettings.from_env({**base, **env}))
        try:
            assert service.follower.step_every_s == step_s
            assert service.clock.nap() == step_s  # nobody listens in an index service
        finally:
            asyncio.run(service.follower.index.close())  # its shard's temporary directory
    with pytest.raises(msgspec.ValidationError, match="index_step_ms"):
        HubSettings.from_env({**base, "HUB_INDEX_STEP_MS": "0"})
