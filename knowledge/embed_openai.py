"""The production embedder: any OpenAI-compatible ``POST {url}/embeddings`` (OpenAI, TEI, vLLM,
Ollama). Texts go in batches; 429 and 5xx answers and connection failures are retried a bounded
number of times, waiting what Retry-After asks (capped) or a doubling backoff; every vector's
length is checked against the configured dimension, so a wrong model is refused at the first
call (``open_embedder`` makes that call at start) instead of filling an index with misfits."""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import msgspec

from knowledge.embed import EmbedderConfigError, EmbedderUnavailable, WrongDimension

BATCH = 64
ATTEMPTS = 4
MAX_WAIT_S = 10.0  # longest single wait honoured from Retry-After
TIMEOUT_S = 30.0


class _Item(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _Answer(msgspec.Struct):
    data: list[_Item]


class OpenAIEmbedder:
    """``name`` is ``openai-<model>-<dim>``: one vector collection per model and dimension."""

    def __init__(
        self,
        *,
        url: str,
        model: str,
        dim: int,
        api_key: str = "",
        batch: int = BATCH,
        attempts: int = ATTEMPTS,
        max_wait_s: float = MAX_WAIT_S,
        timeout_s: float = TIMEOUT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if dim <= 0 or batch <= 0 or attempts <= 0:
            raise EmbedderConfigError("dim, batch and attempts must be positive")
        base = url.rstrip("/")
        self.url = base if base.endswith("/embeddings") else base + "/embeddings"
        self.model, self.dim, self.batch = model, dim, batch
        self.name = f"openai-{re.sub(r'[^a-z0-9.]+', '-', model.lower()).strip('-')}-{dim}"
        self.attempts, self.max_wait_s, self._sleep = attempts, max_wait_s, sleep
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for at in range(0, len(texts), self.batch):
            out.extend(await self._batch(list(texts[at : at + self.batch])))
        return out

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        if self._session is None:  # created on first use: a session belongs to a running loop
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        body = {"model": self.model, "input": texts}
        wait, problem = 0.5, ""
        for attempt in range(self.attempts):
            try:
                async with self._session.post(self.url, json=body) as response:
                    raw = await response.read()
                    if response.status == 200:
                        return self._vectors(raw, len(texts))
                    problem = f"{self.url} answered {response.status}: {raw[:200]!r}"
                    if response.status != 429 and response.status < 500:
                        break  # a 4xx other than 429 will not get better by asking again
                    wait = _retry_after(response.headers.get("Retry-After"), default=wait)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{self.url} failed: {exc!r}"
            if attempt + 1 < self.attempts:
                await self._sleep(min(wait, self.max_wait_s))
                wait *= 2
        raise EmbedderUnavailable(f"embedding failed: {problem}", retry_after=math.ceil(wait))

    def _vectors(self, raw: bytes, count: int) -> list[list[float]]:
        try:
            items = sorted(msgspec.json.decode(raw, type=_Answer).data, key=lambda i: i.index)
        except msgspec.DecodeError as exc:
            raise EmbedderUnavailable(f"{self.url} answered no embeddings: {exc}") from exc
        if len(items) != count:
            raise EmbedderUnavailable(f"{self.url} sent {len(items)} vectors for {count} texts")
        out = []
        for item in items:
            if len(item.embedding) != self.dim:
                raise WrongDimension(
                    f"{self.url} model {self.model!r} returns {len(item.embedding)} dimensions, "
                    f"configured dim is {self.dim}"
                )
            norm = math.sqrt(math.fsum(x * x for x in item.embedding)) or 1.0
            out.append([x / norm for x in item.embedding])
        return out


def _retry_after(value: str | None, *, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), else ``default``."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())
