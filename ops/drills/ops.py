"""The drill's mixed traffic, one client (its own ``sub`` and twins) per region's edge.

Per 20 requests: 8 profile patches (each sets a key no other write sets, to a unique value), 1
twin creation, 8 profile reads carrying the client's greatest consistency token, 3 grant
listings. Writes carry an ``Idempotency-Key`` and, like the SDK, are retried after 502/503/504
or a dropped connection with the same key (Retry-After honoured, within ``budget_s``); reads
are retried the same way. Every acknowledged (2xx) write is recorded in ``acked`` for
``verify``.

What a client does when its PoP is gone: a connection that cannot be made (refused, reset) is
sent again to the next region's edge, as anycast moves a client to the next PoP; a timed-out
request is not moved (it may still be in flight there)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import msgspec

from devstack.errors import StackError

RETRY_STATUSES = frozenset({502, 503, 504})
_CYCLE = ("patch",) * 8 + ("create",) + ("read",) * 8 + ("grants",) * 3
TWINS_PER_REGION = 4


class Acked(msgspec.Struct, frozen=True, kw_only=True):
    """A write the service acknowledged: what must be on the primary afterwards."""

    op: str  # patch | create
    twin_id: str
    key: str | None  # the profile key under "d" a patch set
    value: str | None
    token: str | None  # its X-Consistency-Token
    region: str


class Client:
    def __init__(self, run_id: str, region: str, edges: dict[str, str], bearer: str,
                 timeout_s: float, budget_s: float, cell: str | None = None,
                 zone: str | None = None) -> None:
        """``cell``, ``zone``: a drill of a cell other than the home cell writes twins pinned
        to its zone, with ids marked for it (``ru1~...``)."""
        self.region, self.sub = region, f"drill-{run_id}-{region}"
        self.mark = f"{cell}~" if cell else ""
        self.placed: dict[str, str] = {"residency": zone} if zone else {}
        self._order = [region] + [r for r in edges if r != region]
        self._edges, self._bearer = edges, bearer
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._budget_s = budget_s
        self.token: str | None = None
        self.twins: list[str] = []

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, json: object = None,
                      content_type: str | None = None, key: str | None = None,
                      ) -> tuple[str, httpx.Response | None]:
        """(status, final response); status is the HTTP code or the transport error's name."""
        started, attempt, hop = time.monotonic(), 0, 0
        headers = {"Authorization": f"Bearer {self._bearer}", "Cache-Control": "no-cache"}
        if key:
            headers["Idempotency-Key"] = key
        if json is not None:
            headers["Content-Type"] = content_type or "application/json"
        while True:
            if self.token:
                headers["X-Consistency-Token"] = self.token
            edge = self._edges[self._order[hop % len(self._order)]]
            delay: float | None = min(2.0, 0.1 * 2**attempt)
            try:
                body = msgspec.json.encode(json) if json is not None else None
                answer = await self._http.request(method, edge + path, content=body,
                                                  headers=headers)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                status, r = type(exc).__name__, None
                hop += 1  # this PoP is gone: the next one
                delay = 0.05
            except httpx.HTTPError as exc:
                status, r = type(exc).__name__, None
            else:
                status, r = str(answer.status_code), answer
                seen = answer.headers.get("x-consistency-token")
                if seen and (self.token is None or seen > self.token):
                    self.token = seen
                if answer.status_code not in RETRY_STATUSES:
                    return status, answer
                if retry_after := answer.headers.get("retry-after"):
                    delay = _seconds(retry_after, delay)
            attempt += 1
            if time.monotonic() - started + (delay or 0) > self._budget_s:
                return status, r
            await asyncio.sleep(delay or 0)


def _seconds(raw: str, default: float | None) -> float | None:
    try:
        return min(float(raw), 5.0)
    except ValueError:
        return default


class Mix:
    """The callable an ``OpenLoop`` drives: request ``i`` goes to edge ``i mod regions``."""

    def __init__(self, clients: list[Client]) -> None:
        self.clients = clients
        self.acked: list[Acked] = []
        self._n = 0

    async def setup(self, within_s: float = 90.0) -> None:
        """Each client's twins, before the clock starts (not part of the measurement). Retried
        for up to ``within_s``: after the previous drill the stack may still be catching up
        (a restarted primary, central reconnecting), and a drill starts on a serving stack."""
        deadline = time.monotonic() + within_s
        for c in self.clients:
            while len(c.twins) < TWINS_PER_REGION:
                twin, key = f"{c.mark}{c.sub}-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
                status, r = await c.request("POST", "/v1/twins", key=key, json={
                    "twin_id": twin, "profile": {"d": {}}, **c.placed})
                if r is not None and r.status_code == 201:
                    c.twins.append(twin)
                elif time.monotonic() > deadline or (r is not None and r.status_code < 500
                                                     and r.status_code != 429):
                    raise StackError(f"drill set-up: creating {twin} answered {status}: "
                                     f"{r.text if r is not None else ''}")
                else:
                    await asyncio.sleep(1)

    async def __call__(self, i: int) -> tuple[str, str, str, bool]:
        client = self.clients[i % len(self.clients)]
        op = _CYCLE[(i // len(self.clients)) % len(_CYCLE)]
        self._n += 1
        twin = client.twins[self._n % len(client.twins)]
        key = str(uuid.uuid4())
        if op == "patch":
            field, value = f"k{self._n}", f"v-{key[:12]}"
            status, r = await client.request("PATCH", f"/v1/twins/{twin}", key=key,
                                             json={"d": {field: value}},
                                             content_type="application/merge-patch+json")
            if r is not None and r.is_success:
                self.acked.append(Acked(op=op, twin_id=twin, key=field, value=value,
                                        token=r.headers.get("x-consistency-token"),
                                        region=client.region))
        elif op == "create":
            twin = f"{client.mark}{client.sub}-{key[:12]}"
            status, r = await client.request("POST", "/v1/twins", key=key, json={
                "twin_id": twin, "profile": {"d": {}}, **client.placed})
            if r is not None and r.is_success:
                self.acked.append(Acked(op=op, twin_id=twin, key=None, value=None,
                                        token=r.headers.get("x-consistency-token"),
                                        region=client.region))
        elif op == "read":
            status, r = await client.request("GET", f"/v1/twins/{twin}")
        else:
            status, r = await client.request("GET", f"/v1/twins/{twin}/grants")
        return op, client.region, status, r is not None and r.is_success
