"""What one call is, independent of sync or async: the request it sends, whether it may be
retried after what, and how its answer decodes. Both clients run the same rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any, Generic, TypedDict, TypeVar

import httpx
import msgspec

T = TypeVar("T")

JSON = "application/json"
OCTETS = "application/octet-stream"
MERGE_PATCH = "application/merge-patch+json"


class Options(TypedDict, total=False):
    """Per-call overrides every action accepts."""

    consistency_token: str | None  # instead of the client's greatest-seen token
    idempotency_key: str | None  # writes: instead of a generated one


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str  # relative to the client's base URL, or a whole (signed) URL
    answer: type[T]  # a Struct, or bytes for raw bytes
    writes: bool
    body: bytes | None = None
    content_type: str | None = None
    params: dict[str, str] | None = None
    keyed: bool = True  # a write that takes an Idempotency-Key (signed-URL uploads do not)
    bearer: bool = True  # signed URLs carry no bearer token
    consistency_token: str | None = None
    idempotency_key: str | None = None

    def prepared(self) -> Call[T]:
        """The call as every attempt sends it: a keyed write gets its key once, here, so each
        retry of this call carries the same one and the service applies it once."""
        if self.writes and self.keyed and self.idempotency_key is None:
            return replace(self, idempotency_key=str(uuid.uuid4()))
        return self


def call(method: str, path: str, answer: type[T], *, writes: bool, body: Any = None,
         content_type: str | None = None, params: dict[str, str] | None = None,
         opts: Options) -> Call[T]:
    """A JSON call: ``body`` (a Struct or a plain value) is encoded unless it is already bytes."""
    raw = body if isinstance(body, bytes) or body is None else msgspec.json.encode(body)
    if raw is not None and content_type is None:
        content_type = JSON
    return Call(method, path, answer, writes, raw, content_type, params,
                consistency_token=opts.get("consistency_token"),
                idempotency_key=opts.get("idempotency_key"))


def retry_delay(call: Call[Any], status: int | None, retry_after: float | None,
                attempt: int) -> float | None:
    """Seconds to wait before retrying after ``status`` (None: the connection failed), or None
    when this answer must not be retried. 429 means nothing happened, so any call may go again;
    a write that might have landed (503, 502, 504, a dropped connection) only with its key."""
    if status == 429:
        pass
    elif status in (None, 502, 503, 504):
        if call.writes and call.idempotency_key is None:
            return None
    else:
        return None
    if retry_after is not None:
        return retry_after
    return min(2.0, 0.1 * 2**attempt)  # no Retry-After: a short exponential backoff


def headers(call: Call[Any], bearer: str, token: str | None) -> dict[str, str]:
    out: dict[str, str] = {"Accept": f"{JSON}, {OCTETS}, application/problem+json"}
    if call.bearer:
        out["Authorization"] = f"Bearer {bearer}"
    if token := call.consistency_token or token:
        out["X-Consistency-Token"] = token
    if call.idempotency_key is not None:
        out["Idempotency-Key"] = call.idempotency_key
    if call.content_type is not None:
        out["Content-Type"] = call.content_type
    return out


def greater_token(current: str | None, response: httpx.Response) -> str | None:
    """Tokens are ``L`` plus 16 hex digits: they order as strings."""
    seen = response.headers.get("x-consistency-token")
    if seen and (current is None or seen > current):
        return seen
    return current


def decode(call: Call[T], response: httpx.Response) -> T:
    if call.answer is bytes:
        return response.content  # type: ignore[return-value]
    return msgspec.json.decode(response.content, type=call.answer)
