"""A hub worker's way to its hub's index service (``regional.index_service``): searches, and a
long poll that keeps the index's status (its mark and state) for the worker's ``/healthz``,
``/v1/regions`` and metrics. A 503 from the service (index behind the caller's token, not current
yet, too busy) is the same 503 here; a service that does not answer is a 503 too, so the edge
moves the search to another region."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import aiohttp
import msgspec

from mbwire import BadRequest, ConsistencyToken, ReplicaBehind, Unavailable
from regional.index_service import (
    IndexStatus,
    SearchAnswer,
    SearchBody,
    WordsAnswer,
    WordsBody,
)
from regional.index_words import WordHit
from regional.vectors import Hit, Scope

log = logging.getLogger("memorybank.index")


@runtime_checkable
class SearchIndex(Protocol):
    """What a hub worker asks of its index: ``IndexClient`` (the hub's index service) or
    ``LocalIndex`` (an index in the worker itself). Runtime-checkable: Litestar checks the
    dependencies it hands to handlers."""

    @property
    def mark(self) -> ConsistencyToken: ...
    @property
    def state(self) -> str: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def watch(self) -> None: ...
    async def search(self, vector: list[float], scope: Scope, limit: int,
                     token: ConsistencyToken | None = None, wait_s: float = 0.0,
                     ) -> tuple[list[Hit], ConsistencyToken]: ...
    async def words(self, terms: list[str], scope: Scope, limit: int,
                    token: ConsistencyToken | None = None, wait_s: float = 0.0,
                    ) -> tuple[list[WordHit], ConsistencyToken]: ...


_encode = msgspec.json.Encoder().encode
_answer = msgspec.json.Decoder(SearchAnswer)
_words = msgspec.json.Decoder(WordsAnswer)
_status = msgspec.json.Decoder(IndexStatus)
_JSON = {"content-type": "application/json"}


class IndexClient:
    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.status: IndexStatus | None = None  # as last heard; None: not heard from
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def mark(self) -> ConsistencyToken:
        return ConsistencyToken.parse(self.status.position) if self.status else ConsistencyToken(0)

    @property
    def state(self) -> str:
        return self.status.state if self.status else "unreachable"

    async def search(self, vector: list[float], scope: Scope, limit: int,
                     token: ConsistencyToken | None = None, wait_s: float = 0.0,
                     ) -> tuple[list[Hit], ConsistencyToken]:
        """The hits and the position they cover."""
        body = SearchBody.asking(vector, scope, limit, token, wait_s)
        return _answer.decode(await self._post("search", _encode(body), wait_s)).answered()

    async def words(self, terms: list[str], scope: Scope, limit: int,
                    token: ConsistencyToken | None = None, wait_s: float = 0.0,
                    ) -> tuple[list[WordHit], ConsistencyToken]:
        """Keyword hits (document, best chunk, score) and the position they cover."""
        body = WordsBody.asking(terms, scope, limit, token, wait_s)
        return _words.decode(await self._post("words", _encode(body), wait_s)).answered()

    async def _post(self, what: str, data: bytes, wait_s: float) -> bytes:
        """The service's answer to a search; its refusals as this side's errors."""
        assert self._session is not None
        try:
            async with self._session.post(f"{self.url}/v1/index/{what}", data=data,
                                          headers=_JSON,
                                          timeout=aiohttp.ClientTimeout(
                                              total=self.timeout_s + wait_s)) as r:
                raw = await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"this region's search index does not answer "
                              f"({type(exc).__name__})", retry_after=1) from None
        if status == 200:
            return raw
        detail = _detail(raw)
        if status == 400:
            raise BadRequest(detail)
        if status == 503:
            raise ReplicaBehind(detail, retry_after=1)
        raise Unavailable(f"this region's search index answered {status}: {detail}",
                          retry_after=1)

    async def fetch_status(self) -> IndexStatus:
        assert self._session is not None
        async with self._session.get(f"{self.url}/v1/index/status") as r:
            r.raise_for_status()
            self.status = _status.decode(await r.read())
        return self.status

    async def watch(self, every_s: float = 1.0) -> None:
        """Keeps ``status`` (what ``/healthz``, ``/v1/regions`` and the metrics show) at most
        ``every_s`` old. Not a long poll on the mark: under writes the mark moves every few
        milliseconds, and a call per move cost more hub CPU than the searches (measured under
        ``scripts/load``); a search waits for its token in the service itself."""
        while True:
            try:
                await self.fetch_status()
            except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
                if self.status is not None:
                    log.warning("index service unreachable: %s", exc)
                self.status = None
            await asyncio.sleep(every_s)


def _detail(raw: bytes) -> str:
    try:
        body: Any = msgspec.json.decode(raw)
        return str(body.get("detail") or body.get("title") or raw[:200])
    except (msgspec.DecodeError, AttributeError):
        return raw[:200].decode(errors="replace")


class LocalIndex:
    """The index in this worker (a hub without ``HUB_INDEX_URL``: tests, one-process tools):
    an ``IndexService`` on the hub's own replica and clock, the same rules as the service's.
    Made by ``make`` when first used (its shard is a temporary directory, which an app built and
    never started, such as one asked only for its OpenAPI document, would leave behind)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make: Callable[[], Any] | None = make
        self._service: Any = None

    @property
    def service(self) -> Any:
        if self._service is None and self._make is not None:
            self._service, self._make = self._make(), None
        return self._service

    @property
    def mark(self) -> ConsistencyToken:
        return self.service.follower.mark

    @property
    def state(self) -> str:
        return str(self.service.follower.state)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        if self._service is not None:  # never made: nothing to close
            await self._service.follower.close()

    async def search(self, vector: list[float], scope: Scope, limit: int,
                     token: ConsistencyToken | None = None, wait_s: float = 0.0,
                     ) -> tuple[list[Hit], ConsistencyToken]:
        answer = await self.service.search(SearchBody.asking(vector, scope, limit, token, wait_s))
        return answer.answered()

    async def words(self, terms: list[str], scope: Scope, limit: int,
                    token: ConsistencyToken | None = None, wait_s: float = 0.0,
                    ) -> tuple[list[WordHit], ConsistencyToken]:
        answer = await self.service.words(WordsBody.asking(terms, scope, limit, token, wait_s))
        return answer.answered()

    async def watch(self) -> None:
        await self.service.follower.run()


def index_for(settings: Any, replica: Any, clock: Any) -> SearchIndex:
    """The hub's index service when ``HUB_INDEX_URL`` names one, else one in this worker."""
    if settings.index_url:
        return IndexClient(settings.index_url)
    from regional.index_service import IndexService

    # In this worker's memory, never in HUB_INDEX_DIR: several workers would share the shard.
    return LocalIndex(lambda: IndexService(msgspec.structs.replace(settings, index_dir=""),
                                           replica=replica, clock=clock))
