"""The synchronous client: the async one's resources and rules over httpx's blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Self, TypeVar, Unpack

import httpx

from memorybank_client import _calls
from memorybank_client import _generated as g
from memorybank_client import _sugar as s
from memorybank_client import types as t
from memorybank_client._calls import Options
from memorybank_client.aio import not_stored
from memorybank_client.errors import from_response, retry_after

T = TypeVar("T")


class MemoryBank(g.SyncClient):
    """``with MemoryBank(url, jwt) as mb: mb.twins.get(...)``; see ``AsyncMemoryBank``."""

    twins: Twins
    artifacts: Artifacts

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
        self._init_resources()  # one per resource of the table (_generated)
        self.twins = Twins(self)  # with the conveniences below
        self.artifacts = Artifacts(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: _calls.Call[T]) -> T:
        """Sends one ``Call`` (a builder's, ``memorybank_client.BUILDERS``) and decodes
        its answer, with this client's retries, token and errors."""
        return self._call(call)

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


class Twins(g.Twins):
    def create(self, profile: Mapping[str, Any] | None = None, twin_id: str | None = None,
               residency: str | None = None,
               **opts: Unpack[Options]) -> t.TwinCreated:
        """Create a twin (``profile`` may come first); ``residency``: the zone its data never
        leaves (``global`` by default, e.g. ``ru``), fixed for its life."""
        return self._call(s.create_twin(profile, twin_id, residency, **opts))

    def get(self, twin_id: str, fields: str | Iterable[str] | None = None,
            **opts: Unpack[Options]) -> t.TwinView:
        """Read a twin's profile; ``fields``: paths to keep, as a string or a list."""
        return self._call(s.get_twin_profile(twin_id, fields, **opts))

    def sync(self, twin_id: str, sv: bytes | str | None = None,
             **opts: Unpack[Options]) -> bytes:
        """A Yjs update with what the state vector ``sv`` (bytes, or base64url) lacks."""
        return self._call(s.sync_twin(twin_id, sv, **opts))


    def recall(self, twin_id: str, query: str, *, limit: int = 10,
               mode: Literal["semantic", "keyword", "hybrid"] = "hybrid",
               **opts: Unpack[Options]) -> t.KnowledgeResults:
        """The twin's text events that answer ``query`` (each hit's ``id`` an ``event_id``,
        with ``occurred_at``): ``knowledge.query`` filtered to the twin's events."""
        return self._call(s.recall(twin_id, query, limit=limit, mode=mode, **opts))

class Artifacts(g.Artifacts):
    def upload(self, twin_id: str, content: bytes, content_type: str,
               metadata: Mapping[str, Any] | None = None,
               **opts: Unpack[Options]) -> t.ArtifactView:
        """Announce the artifact (its size and sha256 computed here), then PUT the bytes to the
        signed URL the service answered."""
        created = self._call(s.announce(twin_id, content, content_type, metadata, **opts))
        return self.put_content(created.upload_url, content, content_type)

    def download(self, artifact_id: str, **opts: Unpack[Options]) -> bytes:
        """The artifact's bytes, from the ``download_url`` of its metadata."""
        view = self.get(artifact_id, **opts)
        if view.download_url is None:
            raise not_stored(view)
        return self.get_content(view.download_url)


