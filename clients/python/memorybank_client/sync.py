"""The synchronous client: the async one's resources and rules over httpx's blocking client."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx

from memorybank_client import _actions as a
from memorybank_client import _calls
from memorybank_client import types as t
from memorybank_client.aio import not_stored
from memorybank_client.errors import from_response, retry_after

P = ParamSpec("P")
T = TypeVar("T")


class MemoryBank:
    """``with MemoryBank(url, jwt) as mb: mb.twins.get(...)``; see ``AsyncMemoryBank``."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 max_retries: int = 3, retry_budget_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._bearer = token
        self.max_retries = max_retries
        self.retry_budget_s = retry_budget_s
        self.consistency_token: str | None = None
        # The last HTTP answer, for what the Structs leave out (X-Served-By, X-Cache, timing).
        self.last_response: httpx.Response | None = None
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.twins = Twins(self)
        self.knowledge = Knowledge(self)
        self.wallets = Wallets(self)
        self.artifacts = Artifacts(self)
        self.agents = Agents(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def regions(self, **opts: Any) -> t.RegionsView:
        return self._call(a.list_regions(**opts))

    def batch(self, queries: Any, **opts: Any) -> t.BatchResults:
        return self._call(a.batch_query(queries, **opts))

    def _call(self, call: _calls.Call[T]) -> T:
        return _calls.decode(call, self._send(call.prepared()))

    def _send(self, call: _calls.Call[Any]) -> httpx.Response:
        # The same loop as AsyncMemoryBank._send, blocking.
        started = time.monotonic()
        attempt = 0
        while True:
            headers = _calls.headers(call, self._bearer, self.consistency_token)
            try:
                response = self._http.request(call.method, call.path, params=call.params,
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
            time.sleep(delay)
            attempt += 1

    def _may_retry(self, delay: float | None, attempt: int, started: float) -> bool:
        return (delay is not None and attempt < self.max_retries
                and time.monotonic() - started + delay <= self.retry_budget_s)


class _Resource:
    def __init__(self, client: MemoryBank) -> None:
        self._client = client


def _bind(build: Callable[P, _calls.Call[T]]) -> Callable[Concatenate[_Resource, P], T]:
    def method(self: _Resource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._client._call(build(*args, **kwargs))

    method.__name__, method.__doc__ = build.__name__, build.__doc__
    return method


class Twins(_Resource):
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


class Wallets(_Resource):
    transfer = _bind(a.transaction)
    get = _bind(a.get_wallet)
    mint = _bind(a.mint)


class Agents(_Resource):
    register = _bind(a.register_agent)
    delete = _bind(a.delete_agent)
    search = _bind(a.search_agents)


class Knowledge(_Resource):
    ingest = _bind(a.ingest_knowledge)
    delete = _bind(a.delete_knowledge)
    query = _bind(a.query_knowledge)


class Artifacts(_Resource):
    get = _bind(a.get_artifact)

    def upload(self, twin_id: str, content: bytes, content_type: str,
               metadata: Mapping[str, Any] | None = None, **opts: Any) -> t.ArtifactView:
        created = self._client._call(
            a.create_artifact(twin_id, content, content_type, metadata, **opts))
        return self._client._call(a.upload_artifact(created.upload_url, content, content_type))

    def download(self, artifact_id: str, **opts: Any) -> bytes:
        view = self.get(artifact_id, **opts)
        if view.download_url is None:
            raise not_stored(view)
        return self._client._call(a.download_artifact(view.download_url))
