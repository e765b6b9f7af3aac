"""The offline default embedder, on the real pinned model and tokenizer."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from knowledge.embed import EmbedderConfigError, QueryCache, make_embedder
from knowledge.embed_local import (
    MODEL_SHA256,
    TOKENIZER_PATH,
    TOKENIZER_SHA256,
    LocalEmbedder,
    default_model_path,
    integer_graph,
)


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder(threads=1)


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def integer(int8_cache: Path) -> LocalEmbedder:
    return LocalEmbedder(threads=1, compute="int8", cache_dir=int8_cache)


def _cos(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _altered_copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    return dst


def test_an_altered_tokenizer_is_refused_naming_file_and_hashes(tmp_path: Path) -> None:
    bad = _altered_copy(TOKENIZER_PATH, tmp_path / "tokenizer.json")
    with pytest.raises(EmbedderConfigError) as refused:
        LocalEmbedder(tokenizer_path=bad)
    message = str(refused.value)
    assert str(bad) in message and TOKENIZER_SHA256 in message
    assert "refusing" in message


def test_an_altered_model_is_refused_naming_file_and_hashes(tmp_path: Path) -> None:
    bad = _altered_copy(default_model_path(), tmp_path / "model.onnx")
    with pytest.raises(EmbedderConfigError) as refused:
        LocalEmbedder(model_path=bad)
    assert str(bad) in str(refused.value) and MODEL_SHA256 in str(refused.value)


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbedderConfigError, match="cannot read model file"):
        LocalEmbedder(model_path=tmp_path / "absent.onnx")


async def test_vectors_are_unit_length_and_named_by_model_and_dim(local: LocalEmbedder) -> None:
    vectors = await local.embed(["hello world", "", "a much longer sentence " * 100])
    assert local.name == "minilm-l6-v2-int8-384" and local.dim == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(math.sqrt(_cos(v, v)) - 1.0) < 1e-5 for v in vectors)
    assert await local.embed([]) == []


async def test_similar_texts_score_higher_than_unrelated_ones(local: LocalEmbedder) -> None:
    cat, kitten, revenue, rust = await local.embed([
        "The cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Quarterly revenue grew five percent in Europe.",
        "How do I stop my bicycle chain from rusting?",
    ])
    assert _cos(cat, kitten) > _cos(cat, revenue) + 0.3
    assert _cos(cat, kitten) > _cos(cat, rust) + 0.3


async def test_a_batch_gives_each_text_its_own_vector_in_order(local: LocalEmbedder) -> None:
    texts = ["short", "a somewhat longer text about databases and replication", "mid length"]
    together = await local.embed(texts)
    alone = [(await local.embed([t]))[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert _cos(a, b) > 0.999  # padding in a batch must not change a text's vector


class _Counting:
    """A real embedder that also counts the texts it was asked to embed."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner, self.name, self.dim, self.asked = inner, inner.name, inner.dim, 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.asked += len(texts)
        return await self.inner.embed(texts)


async def test_query_cache_embeds_each_text_once_and_stays_bounded(local: LocalEmbedder) -> None:
    counting = _Counting(local)
    cache = QueryCache(counting, size=2)
    first = await cache.embed(["q1", "q2", "q1"])
    assert counting.asked == 2 and first[0] == first[2]
    again = await cache.embed(["q2", "q1"])
    assert counting.asked == 2 and again == [first[1], first[0]]
    await cache.embed(["q3"])  # evicts the least recently used, q2
    await cache.embed(["q1"])
    assert counting.asked == 3
    await cache.embed(["q2"])
    assert counting.asked == 4 and cache.name == local.name and cache.dim == local.dim


def test_make_embedder_refuses_unknown_kinds_and_incomplete_openai_settings() -> None:
    with pytest.raises(EmbedderConfigError, match="unknown embedder kind"):
        make_embedder("word2vec")
    with pytest.raises(EmbedderConfigError, match="needs url, model and dim"):
        make_embedder("openai", url="http://127.0.0.1:1", model="m")
    assert isinstance(make_embedder("local", query_cache=8), QueryCache)


PASSAGES = [
    "The cat is sleeping on the sofa.",
    "Quarterly revenue grew five percent in Europe.",
    "How do I stop my bicycle chain from rusting?",
    "The primary database fails over to its synchronous standby.",
    "She moved from Lisbon to Oslo last spring for a new job.",
    "Bake the bread at 220 degrees for thirty minutes.",
    "The twins' profiles merge edits made offline on two phones.",
    "Our team won the regional football final on penalties.",
]
QUERIES = [
    "kitten napping on a couch", "sales growth in european markets", "rusty bike chain",
    "database failover to a standby", "relocated to Norway", "baking bread temperature",
    "offline edits merged across devices", "football match won by penalty shootout",
]


async def test_int8_queries_find_what_float_queries_find(local: LocalEmbedder,
                                                         integer: LocalEmbedder) -> None:
    """The hubs embed queries with the int8 graph and search chunks the float graph embedded:
    each query's vector stays close to the float one, and ranks the float passages alike."""
    assert integer.name == local.name and integer.dim == local.dim  # the same index
    passages = await local.embed(PASSAGES)
    exact, quick = await local.embed(QUERIES), await integer.embed(QUERIES)
    for e, q in zip(exact, quick, strict=True):
        assert _cos(e, q) > 0.97
        assert abs(math.sqrt(_cos(q, q)) - 1.0) < 1e-5
        # Each passage scores within 0.05 of its float score (the relevant one leads the rest
        # by ~0.4). Not the runner-up's rank: the unrelated passages sit within 0.02 of each
        # other, and which comes second flips with the CPU's integer kernels (it did on an
        # AMD EPYC).
        assert max(abs(_cos(q, p) - _cos(e, p)) for p in passages) < 0.05
    assert [max(range(len(passages)), key=lambda i: _cos(q, passages[i])) for q in quick] == \
        list(range(len(QUERIES)))


def test_the_int8_graph_is_derived_once_and_again_when_changed(tmp_path: Path) -> None:
    source = default_model_path()
    graph = integer_graph(source, MODEL_SHA256, tmp_path)
    made, stamp = graph.read_bytes(), graph.stat().st_mtime_ns
    assert integer_graph(source, MODEL_SHA256, tmp_path) == graph
    assert graph.stat().st_mtime_ns == stamp                   # kept, not derived again
    _altered_copy(graph, tmp_path / "altered.onnx").replace(graph)
    assert integer_graph(source, MODEL_SHA256, tmp_path) == graph
    assert graph.read_bytes() == made                          # a changed file: derived again
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".lock", ".onnx", ".sha256"]


def test_a_kept_int8_graph_loads_without_importing_onnx(integer: LocalEmbedder,
                                                         int8_cache: Path) -> None:
    """onnx is needed only to derive the graph; importing it cost every hub worker and index
    service 1.2 s of CPU at start. Its version still names the graph (a new onnx derives a
    new one)."""
    import onnx

    [graph] = int8_cache.glob("*.onnx")
    assert graph.name.endswith(f"-onnx{onnx.__version__}.onnx")
    code = ("import sys; from pathlib import Path; from knowledge.embed_local import *; "
            f"LocalEmbedder(threads=1, compute='int8', cache_dir=Path({str(int8_cache)!r})); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'onnx'))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3])
    assert ran.stdout.strip() == "[]"
    assert sorted(p.name for p in int8_cache.glob("*.onnx")) == [graph.name]  # not derived again


def test_an_unknown_compute_is_refused() -> None:
    with pytest.raises(EmbedderConfigError, match="unknown compute"):
        LocalEmbedder(compute="fp16")  # type: ignore[arg-type]
