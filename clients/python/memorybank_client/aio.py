"""The async client: ``async with AsyncMemoryBank(url, jwt) as mb: await mb.twins.get(...)``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx

from memorybank_client import _actions as a
from memorybank_client import _calls, realtime
from memorybank_client import types as t
from memorybank_client.errors import Conflict, from_response, retry_after

P = ParamSpec("P")
T = TypeVar("T")


class AsyncMemoryBank:
    """One caller (a bearer JWT) talking to one edge. Carries the greatest consistency token any
    answer carried and sends it on every call, so a read sees this client's earlier writes in
    any region; set ``consistency_token`` to carry another client's."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 max_retries: int = 3, retry_budget_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._bearer = token
        self.max_retries = max_retries
        self.retry_budget_s = retry_budget_s
        self.consistency_token: str | None = None
        # The last HTTP answer, for what the Structs leave out (X-Served-By, X-Cache, timing).
        self.last_response: httpx.Response | None = None
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self.twins = AsyncTwins(self)
        self.knowledge = AsyncKnowledge(self)
        self.wallets = AsyncWallets(self)
        self.artifacts = AsyncArtifacts(self)
        self.agents = AsyncAgents(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def regions(self, **opts: Any) -> t.RegionsView:
        return await self._call(a.list_regions(**opts))

    async def batch(self, queries: Any, **opts: Any) -> t.BatchResults:
        return await self._call(a.batch_query(queries, **opts))

    def subscribe(self, channels: list[str], **opts: Any) -> AsyncIterator[realtime.Message]:
        """Realtime messages, reconnecting with ``since`` (``memorybank_client.realtime``);
        subscribes at or after this client's consistency token, so its own writes are seen."""
        opts.setdefault("consistency_token", self.consistency_token)
        return realtime.subscribe(str(self._http.base_url), self._bearer, channels, **opts)

    async def _call(self, call: _calls.Call[T]) -> T:
        return _calls.decode(call, await self._send(call.prepared()))

    async def _send(self, call: _calls.Call[Any]) -> httpx.Response:
        started = time.monotonic()
        attempt = 0
        while True:
            headers = _calls.headers(call, self._bearer, self.consistency_token)
            try:
                response = await self._http.request(call.method, call.path, params=call.params,
                                                     content=call.body, headers=headers)
            except httpx.TransportError:
                delay = _calls.retry_delay(call, None, None, attempt)
                if not self._may_retry(delay, attempt, started):
                    raise
            else:
                self.last_response = response
                self.consistency_token = _calls.greater_token(self.consistency_token, response)
                if response.is_success:
                    return response
                delay = _calls.retry_delay(call, response.status_code, retry_after(response),
                                           attempt)
                if not self._may_retry(delay, attempt, started):
                    raise from_response(response)
            assert delay is not None
            await asyncio.sleep(delay)
            attempt += 1

    def _may_retry(self, delay: float | None, attempt: int, started: float) -> bool:
        """Within ``max_retries`` and when the wait still ends inside ``retry_budget_s``."""
        return (delay is not None and attempt < self.max_retries
                and time.monotonic() - started + delay <= self.retry_budget_s)


class _Resource:
    def __init__(self, client: AsyncMemoryBank) -> None:
        self._client = client


def _bind(build: Callable[P, _calls.Call[T]],
          ) -> Callable[Concatenate[_Resource, P], Coroutine[Any, Any, T]]:
    """A resource method from an action's builder: same arguments, awaits the answer."""

    async def method(self: _Resource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._client._call(build(*args, **kwargs))

    method.__name__, method.__doc__ = build.__name__, build.__doc__
    return method


class AsyncTwins(_Resource):
    create = _bind(a.create_twin)
    get = _bind(a.get_twin_profile)
    patch = _bind(a.patch_twin)
    update = _bind(a.post_twin_update)
    sync = _bind(a.sync_twin)
    grant = _bind(a.grant_twin)
    grants = _bind(a.list_twin_grants)
    revoke = _bind(a.revoke_twin_grant)
    log_events = _bind(a.log_event)
    events = _bind(a.list_events)
    update_trajectory = _bind(a.update_trajectory)
    trajectory = _bind(a.get_trajectory)
    recommendations = _bind(a.get_recommendations)


class AsyncWallets(_Resource):
    transfer = _bind(a.transaction)
    get = _bind(a.get_wallet)
    mint = _bind(a.mint)


class AsyncAgents(_Resource):
    register = _bind(a.register_agent)
    delete = _bind(a.delete_agent)
    search = _bind(a.search_agents)


class AsyncKnowledge(_Resource):
    ingest = _bind(a.ingest_knowledge)
    delete = _bind(a.delete_knowledge)
    query = _bind(a.query_knowledge)


class AsyncArtifacts(_Resource):
    get = _bind(a.get_artifact)

    async def upload(self, twin_id: str, content: bytes, content_type: str,
                     metadata: Mapping[str, Any] | None = None, **opts: Any) -> t.ArtifactView:
        """Announce the artifact (its size and sha256 computed here), then PUT the bytes to the
        signed URL the service answered."""
        created = await self._client._call(
            a.create_artifact(twin_id, content, content_type, metadata, **opts))
        return await self._client._call(a.upload_artifact(created.upload_url, content,
                                                          content_type))

    async def download(self, artifact_id: str, **opts: Any) -> bytes:
        view = await self.get(artifact_id, **opts)
        if view.download_url is None:
            raise not_stored(view)
        return await self._client._call(a.download_artifact(view.download_url))


def not_stored(view: t.ArtifactView) -> Conflict:
    return Conflict(409, {"type": "about:blank", "title": "Artifact not stored yet",
                          "status": 409, "detail": f"artifact {view.artifact_id} is "
                          f"{view.status}: upload its bytes first"})
