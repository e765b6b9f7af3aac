"""Forwarding one request to a hub, failing over within the request's time budget.

Which requests may go to a second hub after the first one failed:
- reads (GET/HEAD, and the read-only POSTs ``/v1/knowledge/query`` and ``/v1/batch``): always;
- writes: only when the first hub provably never received them (connection refused, connect
  timeout), or when they carry an idempotency key (``Idempotency-Key`` header, or the body's
  ``idempotency_key`` for ``/v1/transactions`` and on every event of ``/v1/events``), since the
  hubs then store a retried write once. Otherwise an unanswered write is a 504 saying its outcome
  is unknown, never a silent second application.

Every outcome feeds the hub's circuit (passive health)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec

from mbedge.messages import EdgeRequest, FetchFailed, HubRequest, HubResponse
from mbedge.ports import Ports
from mbedge.settings import EdgeSettings
from mbwire import HopSigner, Principal, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger("mbedge.forward")

READ_POSTS = frozenset({"/v1/knowledge/query", "/v1/batch"})
# Answers that say "this hub could not serve it now": another hub may.
RETRY_STATUSES = frozenset({502, 503, 504})
# Of those, the ones that say the hub itself is sick. A 503 is a healthy hub refusing on purpose
# (its replica is behind the caller's token, or central is down), so it leaves the circuit alone.
UNHEALTHY_STATUSES = frozenset({502, 504})
FORWARDED_HEADERS = (
    "accept", "content-type", "x-consistency-token", "idempotency-key", "if-match",
    "if-none-match", "tracestate", "user-agent",
)


class _Keyed(msgspec.Struct):
    idempotency_key: str | None = None


class _Events(msgspec.Struct):
    events: list[_Keyed] = []


def is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD", "OPTIONS") or (method == "POST" and path in READ_POSTS)


def idempotency_key(req: EdgeRequest, path: str) -> str | None:
    if key := req.header("idempotency-key"):
        return key
    try:
        if path == "/v1/transactions":
            return msgspec.json.decode(req.body, type=_Keyed).idempotency_key
        if path == "/v1/events":
            events = msgspec.json.decode(req.body, type=_Events).events
            keys = [e.idempotency_key for e in events]
            return ",".join(k for k in keys if k) if keys and all(keys) else None
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nested too deep
        return None  # the hub answers the malformed body; it is simply not retried
    return None


@dataclass(frozen=True, slots=True)
class Hop:
    """What the hub learns about the request beyond its own bytes."""

    principal: Principal
    request_id: str
    traceparent: str
    pop: str


@dataclass(frozen=True, slots=True)
class Forwarded:
    response: HubResponse
    region: str


class Forwarder:
    def __init__(self, settings: EdgeSettings, ports: Ports) -> None:
        self._settings = settings
        self._ports = ports
        self._signer = HopSigner(settings.hop_secret)

    async def forward(self, req: EdgeRequest, hop: Hop, candidates: tuple[str, ...]) -> Forwarded:
        path, clock, health = req.decoded_path, self._ports.clock, self._ports.health
        read = is_read(req.method, path)
        retry_safe = read or idempotency_key(req, path) is not None
        # A read that waits for a consistency token may spend the whole budget on one hub: the
        # hub holds it on purpose, and timing it out early would wrongly open that hub's circuit.
        capped = read and not req.header("x-consistency-token")
        budget = self._settings.read_budget_s if read else self._settings.write_budget_s
        deadline = clock() + budget
        fallback: Forwarded | None = None
        for i, region in enumerate(candidates):
            remaining = deadline - clock()
            if remaining <= 0.01:
                break
            last = i == len(candidates) - 1
            timeout = remaining
            if capped and not last:
                timeout = min(self._settings.attempt_timeout_s, remaining)
            try:
                response = await self._send(region, self._hub_request(region, req, hop), timeout)
            except FetchFailed as exc:
                health.record_failure(region, hard=not exc.sent)
                log.warning("hub %s failed for %s %s: %s", region, req.method, path, exc)
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
        raise UpstreamUnavailable(
            f"no hub of {', '.join(candidates)} answered within the {budget:g}s budget",
            retry_after=max(1, round(health.retry_after_s())),
        )

    async def probe(self, region: str) -> bool:
        """An active health check: ``GET /healthz`` on the hub, recorded in its circuit."""
        request = HubRequest("GET", self._settings.hubs[region].rstrip("/") + "/healthz", {})
        try:
            ok = (await self._send(region, request, self._settings.probe_timeout_s)).status == 200
        except FetchFailed:
            ok = False
        self._ports.health.observe_probe(region, ok)
        return ok

    async def probe_all(self) -> dict[str, bool]:
        regions = list(self._settings.hubs)
        results = await asyncio.gather(*(self.probe(r) for r in regions))
        return dict(zip(regions, results, strict=True))

    async def _send(self, region: str, request: HubRequest, timeout_s: float) -> HubResponse:
        try:
            # The port should honour the timeout itself; this guard makes sure the budget holds
            # even if a runtime's fetch does not.
            return await asyncio.wait_for(self._ports.fetch(request, timeout_s), timeout_s + 0.05)
        except TimeoutError:
            raise FetchFailed(f"no answer from {region} in {timeout_s:.2f}s", sent=True,
                              timed_out=True) from None

    def _hub_request(self, region: str, req: EdgeRequest, hop: Hop) -> HubRequest:
        headers = {name: value for name in FORWARDED_HEADERS if (value := req.header(name))}
        headers.update(
            self._signer.sign(req.method, req.decoded_path, hop.principal, hop.request_id)
        )
        headers["x-request-id"] = hop.request_id
        headers["traceparent"] = hop.traceparent
        headers["x-mb-edge"] = hop.pop
        # The edge hands bodies through untouched; compressing them for one hop costs CPU twice.
        headers["accept-encoding"] = "identity"
        if req.client:
            headers["x-forwarded-for"] = req.client
        url = self._settings.hubs[region].rstrip("/") + req.target
        return HubRequest(req.method, url, headers, req.body)
