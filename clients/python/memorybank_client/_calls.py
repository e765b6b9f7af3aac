"""What one call is, independent of sync or async: the request it sends, whether it may be
retried after what, and how its answer decodes. Both clients run the same rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import msgspec.inspect

from mbwire.token import Tokens

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


def seg(value: str) -> str:
    """A path parameter as one path segment."""
    return quote(value, safe="")


def query(**params: object) -> dict[str, str] | None:
    """The query string's parameters that were given, as strings."""
    given = {name: str(value) for name, value in params.items() if value is not None}
    return given or None


def _plain(value: Any) -> Any:
    """What msgspec cannot encode itself: any mapping as an object, any iterable as an array."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return list(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_plain)


def _keyed(item: Any, field: str) -> Any:
    """``item`` (a Struct or a mapping) with a fresh idempotency key unless it has one."""
    if isinstance(item, msgspec.Struct):
        if getattr(item, field, None):
            return item
        return msgspec.structs.replace(item, **{field: uuid.uuid4().hex})
    return item if item.get(field) else {**item, field: uuid.uuid4().hex}


def call(method: str, path: str, answer: type[T], *, writes: bool, body: Any = None,
         content_type: str | None = None, params: dict[str, str] | None = None,
         keyed: bool = True, bearer: bool = True, body_key: str | None = None,
         item_keys: tuple[str, str] | None = None, opts: Options) -> Call[T]:
    """A call: ``body`` (a Struct, a mapping, a plain value) is JSON-encoded unless it is bytes.

    ``body_key``: the body field the idempotency key travels in (``idempotency_key=``, else made
    here), so every retry of this call is the same write. ``item_keys``: (list field, key field):
    each item of that list without a key gets one made here."""
    if body_key is not None:
        key = opts.get("idempotency_key") or uuid.uuid4().hex
        body, opts = {**body, body_key: key}, {**opts, "idempotency_key": key}
    if item_keys is not None:
        items, field = item_keys
        body = {**body, items: [_keyed(item, field) for item in body[items]]}
    raw = body if isinstance(body, bytes) or body is None else _ENCODER.encode(body)
    if raw is not None and content_type is None:
        content_type = JSON
    return Call(method, path, answer, writes, raw, content_type, params, keyed=keyed,
                bearer=bearer, consistency_token=opts.get("consistency_token"),
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
    """The greatest position per cell of the client's token and the answer's (mbwire.token):
    read-your-writes holds in every cell the client wrote to or read from."""
    seen = Tokens.maybe(response.headers.get("x-consistency-token"))
    if seen is None:
        return current
    held = Tokens.maybe(current)
    return str(held.merge(seen) if held is not None else seen)


def decode(call: Call[T], response: httpx.Response) -> T:
    if call.answer is bytes:
        return response.content  # type: ignore[return-value]
    try:
        return msgspec.json.decode(response.content, type=call.answer)
    except msgspec.ValidationError:
        # The wire types refuse unknown fields (the server's rule for what it is sent); an
        # answer from a newer server may carry fields this client does not know: drop them.
        raw = msgspec.json.decode(response.content)
        known = _known(raw, msgspec.inspect.type_info(call.answer))
        return msgspec.convert(known, call.answer)


def _known(value: Any, info: msgspec.inspect.Type) -> Any:
    """``value`` (decoded JSON) without the object members ``info`` has no field for."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _known(value, info.type)
    if isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        return {k: _known(v, fields[k]) for k, v in value.items() if k in fields}
    if isinstance(info, msgspec.inspect.ListType | msgspec.inspect.VarTupleType) and isinstance(
            value, list):
        return [_known(v, info.item_type) for v in value]
    if isinstance(info, msgspec.inspect.DictType) and isinstance(value, dict):
        return {k: _known(v, info.value_type) for k, v in value.items()}
    if isinstance(info, msgspec.inspect.UnionType) and isinstance(value, dict):
        structs = [t for t in info.types if isinstance(t, msgspec.inspect.StructType)]
        return _known(value, structs[0]) if len(structs) == 1 else value
    return value
