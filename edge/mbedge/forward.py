"""Forwarding one request to a hub, failing over within the request's time budget.

Which requests may go to a second hub after the first one failed (the action table says which
actions read and where a write's idempotency key is, ``mbwire.actions``):
- reads: always;
- writes: only when the first hub provably never received them (connection refused, connect
  timeout), or when they carry an idempotency key, since the hubs then store a retried write
  once. Otherwise an unanswered write is a 504 saying its outcome
  is unknown, never a silent second application.

Every outcome feeds the hub's circuit (passive health). A request goes to the hubs of one cell
(``mbedge.hubs``: its own URLs and circuits); the home cell's unless told otherwise."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

from georouting import Point
from mbedge.hubs import CellHubs, Hubs
from mbedge.messages import EdgeRequest, FetchFailed, HubRequest, HubResponse
from mbedge.ports import Ports
from mbedge.settings import EdgeSettings
from mbwire import HopSigner, Principal, UpstreamTimeout
from mbwire import headers as h
from mbwire.actions import Action
from mbwire.rules import idempotency_key

log = logging.getLogger("mbedge.forward")

# Answers that say "this hub could not serve it now": another hub may.
RETRY_STATUSES = frozenset({502, 503, 504})
# Of those, the ones that say the hub itself is sick. A 503 is a healthy hub refusing on purpose
# (its replica is behind the caller's token, or central is down), so it leaves the circuit alone.
UNHEALTHY_STATUSES = frozenset({502, 504})
FORWARDED_HEADERS = (
    "accept", "content-type", h.CONSISTENCY_TOKEN, h.IDEMPOTENCY_KEY, "if-match",
    "if-none-match", "tracestate", "user-agent",
)


@dataclass(frozen=True, slots=True)
class Hop:
    """What the hub learns about the request beyond its own bytes. No principal for a
    signed-URL action: the hub then checks the URL's own signature."""

    principal: Principal | None
    request_id: str
    traceparent: str
    pop: str
    # Fleet units the PoP asks to be leased for the caller's cache hits (mbedge.fleet); 0: none.
    lease_want: int = 0


@dataclass(frozen=True, slots=True)
class Forwarded:
    response: HubResponse
    region: str


class Forwarder:
    def __init__(self, settings: EdgeSettings, ports: Ports, hubs: Hubs) -> None:
        self._settings = settings
        self._ports = ports
        self._signer = HopSigner(settings.hop_secret)
        self.hubs = hubs

    def route(self, cell: CellHubs, origin: Point) -> tuple[str, ...]:
        """The cell's hubs to try, nearest healthy first (half-open ones get their probe in the
        background); the cell's 503 when none may be tried now."""
        plan = cell.plan(origin)
        for region in plan.probes:
            self._ports.background(self._probe(region, cell))
        if not plan.candidates:
            raise cell.unreachable("every hub is failing; try again shortly",
                                   retry_after=math.ceil(plan.retry_after_s))
        return plan.candidates

    async def forward(
        self, req: EdgeRequest, action: Action, hop: Hop, candidates: tuple[str, ...], *,
        caller_token: bool | None = None, cell: CellHubs | None = None,
    ) -> Forwarded:
        """``caller_token``: whether the caller itself sent the request's consistency token
        (default: whether it has one); a PoP's session floor does not count, see below.
        ``cell``: whose hubs ``candidates`` are (default: the home cell's)."""
        cell = cell or self.hubs.home
        path, clock, health = req.decoded_path, self._ports.clock, cell.health
        read = not action.writes
        retry_safe = read or idempotency_key(
            action, req.header(h.IDEMPOTENCY_KEY), req.body
        ) is not None
        # A read with a consistency token may be held by a hub on purpose (its replica is behind
        # the token). The hub gives up and answers 503 itself within its wait budget, which is
        # below ``attempt_timeout_s``; if the attempt still times out, it is not counted against
        # the hub: a caller's far-future token must never open a healthy hub's circuit. A session
        # floor (mbedge.session) is a token a hub issued, which a healthy hub answers well within
        # its wait budget, so its timeouts still count: nearly every read carries one.
        if caller_token is None:
            caller_token = bool(req.header(h.CONSISTENCY_TOKEN))
        tokened = read and caller_token
        budget = self._settings.read_budget_s if read else self._settings.write_budget_s
        deadline = clock() + budget
        fallback: Forwarded | None = None
        for i, region in enumerate(candidates):
            remaining = deadline - clock()
            if remaining <= 0.01:
                break
            last = i == len(candidates) - 1
            timeout = remaining
            if read and not last:
                timeout = min(self._settings.attempt_timeout_s, remaining)
            try:
                request = self._hub_request(cell.url(region), req, hop, write=action.writes)
                response = await self._send(region, request, timeout)
            except FetchFailed as exc:
                if not (tokened and exc.timed_out and exc.sent):
                    health.record_failure(region, hard=not exc.sent)
                log.warning("hub %s failed for %s %s: %s", cell.name(region), req.method, path,
                            exc)
                if retry_safe or not exc.sent:
                    continue
                raise UpstreamTimeout(
                    f"hub {region} did not answer; the write may or may not have been applied. "
                    "Retry it with an Idempotency-Key to make retries safe."
                ) from None
            if response.status in UNHEALTHY_STATUSES:
                health.record_failure(region)
            else:
                health.record_success(region)
            if response.status in RETRY_STATUSES and retry_safe and not last:
                fallback = Forwarded(response, region)
                continue
            return Forwarded(response, region)
        if fallback is not None:
            return fallback
        raise cell.unreachable(
            f"no hub of {', '.join(candidates)} answered within the {budget:g}s budget",
            retry_after=max(1, round(health.retry_after_s())),
        )

    async def probe(self, region: str, cell: CellHubs | None = None) -> bool:
        """An active health check: ``GET /healthz`` on the hub, recorded in its circuit."""
        cell = cell or self.hubs.home
        request = HubRequest("GET", cell.url(region) + "/healthz", {})
        try:
            ok = (await self._send(region, request, self._settings.probe_timeout_s)).status == 200
        except FetchFailed:
            ok = False
        cell.health.observe_probe(region, ok)
        return ok

    async def _probe(self, region: str, cell: CellHubs) -> None:
        await self.probe(region, cell)

    async def probe_all(self) -> dict[str, bool]:
        """Every hub of every cell, by name (``CellHubs.name``: the region in the home cell)."""
        hubs = self.hubs.every_hub()
        results = await asyncio.gather(*(self.probe(r, c) for c, r in hubs))
        return {c.name(r): ok for (c, r), ok in zip(hubs, results, strict=True)}

    async def _send(self, region: str, request: HubRequest, timeout_s: float) -> HubResponse:
        try:
            # The port should honour the timeout itself; this guard makes sure the budget holds
            # even if a runtime's fetch does not.
            return await asyncio.wait_for(self._ports.fetch(request, timeout_s), timeout_s + 0.05)
        except TimeoutError:
            raise FetchFailed(f"no answer from {region} in {timeout_s:.2f}s", sent=True,
                              timed_out=True) from None

    def _hub_request(
        self, base_url: str, req: EdgeRequest, hop: Hop, *, write: bool = False
    ) -> HubRequest:
        headers = {name: value for name in FORWARDED_HEADERS if (value := req.header(name))}
        # Signed as sent: the raw path and query go to the hub verbatim (the fetch ports must
        # not re-encode them), so the hub checks exactly what it received.
        headers.update(self._signer.sign(
            req.method, req.path, hop.principal, hop.request_id, query=req.query, body=req.body
        ))
        headers[h.REQUEST_ID] = hop.request_id
        headers["traceparent"] = hop.traceparent
        headers[h.EDGE] = hop.pop
        if hop.lease_want > 0:
            headers[h.FLEET_LEASE] = f"want={hop.lease_want}"
        # The edge hands bodies through untouched; compressing them for one hop costs CPU twice.
        headers["accept-encoding"] = "identity"
        if req.client:
            headers["x-forwarded-for"] = req.client
        return HubRequest(req.method, base_url + req.target, headers, req.body, write=write)
