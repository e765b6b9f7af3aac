"""Central's embedder settings: the five ``CENTRAL_EMBEDDER*`` variables and
``CENTRAL_MAX_DOC_CHUNKS`` are known (strict settings refuse unknown ones), typed, and default
to the offline embedder."""

from __future__ import annotations

import pytest

from central.settings import CentralSettings

BASE = {"CENTRAL_DATABASE_URL": "postgresql://x/y", "CENTRAL_HOP_SECRET": "x" * 32}


def test_the_default_is_the_local_embedder() -> None:
    s = CentralSettings.from_env(BASE)
    assert (s.embedder, s.embedder_url, s.embedder_model, s.embedder_api_key,
            s.embedder_dim, s.max_doc_chunks) == ("local", "", "", "", 0, 128)


def test_an_openai_compatible_embedder_is_configured_from_the_environment() -> None:
    s = CentralSettings.from_env({
        **BASE, "CENTRAL_EMBEDDER": "openai", "CENTRAL_EMBEDDER_URL": "https://e.example/v1",
        "CENTRAL_EMBEDDER_MODEL": "text-embedding-3-small", "CENTRAL_EMBEDDER_API_KEY": "k",
        "CENTRAL_EMBEDDER_DIM": "1536", "CENTRAL_MAX_DOC_CHUNKS": "512",
    })
    assert s.max_doc_chunks == 512
    assert (s.embedder, s.embedder_url, s.embedder_model, s.embedder_api_key,
            s.embedder_dim) == ("openai", "https://e.example/v1", "text-embedding-3-small",
                                "k", 1536)


def test_a_mistyped_embedder_variable_fails_at_start() -> None:
    with pytest.raises(ValueError, match=r"CENTRAL_EMBEDDER_DIMS .*CENTRAL_EMBEDDER_DIM"):
        CentralSettings.from_env({**BASE, "CENTRAL_EMBEDDER_DIMS": "384"})


def test_a_shard_knows_its_place_and_a_place_outside_the_shards_is_refused() -> None:
    s = CentralSettings.from_env({**BASE, "CENTRAL_SHARD": "1", "CENTRAL_SHARDS": "2"})
    assert (s.shard, s.shards) == (1, 2)
    assert (CentralSettings.from_env(BASE).shard, CentralSettings.from_env(BASE).shards) == (0, 1)
    for shard, shards in (("2", "2"), ("-1", "2"), ("0", "0")):
        with pytest.raises(ValueError, match="CENTRAL_SHARD"):
            CentralSettings.from_env({**BASE, "CENTRAL_SHARD": shard, "CENTRAL_SHARDS": shards})
