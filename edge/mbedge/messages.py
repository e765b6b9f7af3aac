"""Plain request and response objects: what the adapters (the Worker's ``entry.py``, the local ASGI
server) convert to and from, so the pipeline never sees a runtime's own types.

Header names are lower-case everywhere inside the core; values are passed as received. Bodies are
bytes and are never parsed except where a rule needs a field (batch size, idempotency key).

Also the two ids every request carries. OpenTelemetry does not run in the Worker, so the edge
records no spans: it passes a caller's ``traceparent`` to the hub unchanged (the hub's server span
becomes the caller's child) and starts a trace only when the caller sent none, so edge → hub →
central is still one trace id."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from georouting import Point
from mbwire import headers as h

# version 00: 2 hex version, 32 hex trace id, 16 hex parent id, 2 hex flags (W3C Trace Context).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


# Made ids: a random prefix per process (per isolate in the Worker) and a counter, 32 hex digits
# like a uuid4's; unique without an os.urandom call per request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNT = itertools.count()


def request_id(sent: str | None) -> str:
    """Echo the caller's ``X-Request-Id`` when it is safe to log and forward, else make one."""
    if sent and h.SANE_REQUEST_ID.match(sent):
        return sent
    return f"{_ID_PREFIX}{next(_ID_COUNT):016x}"


def traceparent(sent: str | None) -> str:
    if sent:
        m = _TRACEPARENT.match(sent.strip().lower())
        # ff is a forbidden version; all-zero trace or parent ids are invalid per the spec.
        if (
            m
            and m.group(1) != "ff"
            and m.group(2) != "0" * 32
            and m.group(3) != "0" * 16
        ):
            return m.group(0)
    # Sampled: the edge cannot know the hubs' sampling policy, and an unsampled root would make
    # every hub span under it unsampled too (ParentBased samplers follow the flag).
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"



def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cases names and joins repeated headers with ``, `` (RFC 9110 §5.3)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


@dataclass(frozen=True, slots=True)
class EdgeRequest:
    method: str
    # As sent on the wire (percent-encoded); forwarded verbatim to the hub.
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: str = ""
    body: bytes = b""
    # The caller's location as the runtime knows it (``request.cf`` in the Worker); None locally.
    geo: Point | None = None
    # The Cloudflare location that received the request; None locally (the PoP is configured).
    colo: str | None = None
    # The caller's address, for the anonymous rate-limit bucket.
    client: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def decoded_path(self) -> str:
        """The path as an ASGI server on the hub decodes it: what the hop signature covers."""
        return unquote(self.path)

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass(slots=True)
class EdgeResponse:
    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HubRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""
    # A write: the fetch port sends it over connections of its own, so writes hung on a
    # stalled primary can never take the connections reads need.
    write: bool = False


@dataclass(frozen=True, slots=True)
class HubResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes = b""


class FetchFailed(Exception):
    """The fetch port's one error: no HTTP answer came back from the hub.

    ``sent`` is False only when the hub provably never received the request (connection refused,
    DNS, connect timeout): then even a non-idempotent write may be retried on another hub."""

    def __init__(self, detail: str, *, sent: bool, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.sent = sent
        self.timed_out = timed_out
