"""The hub's admission step after the hop is verified: the fleet-wide rate limit per ``sub``.
Its counts go back to the edge in ``X-MB-Fleet-*`` headers (also on a 429).

A request costs ``cost(method, path, body)`` units (a batch one per item; the action table
supplies the function). The hop guard reads the body (it checks its digest) and leaves it in
``state["body"]``. A breaker sits in front of the limits
Redis: while it is open, requests are admitted on the PoP limits alone at no cost in time.

An edge PoP forwarding a read it holds a cached answer for asks for fleet units to spend on the
caller's next hits (``X-MB-Fleet-Lease: want=n``, ``mbedge.fleet``); they are taken in the same
Redis call and named in the answer's headers, which only that PoP reads (it strips them). Only
the edge sends the header: it forwards no client header of that name (``mbedge.forward``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from mbhttp import metrics
from mbwire import Principal
from mbwire import headers as h
from regional.breaker import Breaker
from regional.ratelimit import FleetLimiter, FleetUnavailable

log = logging.getLogger("memorybank.admission")

Cost = Callable[[str, str, bytes], int]
# The limiter caps a lease by the tier anyway; nine digits keeps a bad header from mattering.
_WANT = re.compile(r"^want=([0-9]{1,9})\Z")


def lease_wanted(state: dict[str, Any]) -> int:
    """Units the edge asks to be leased with this request (0: none, or a malformed ask)."""
    m = _WANT.match((state.get("raw_headers") or {}).get(h.FLEET_LEASE, "").strip())
    return int(m[1]) if m else 0


def unit_cost(method: str, path: str, body: bytes) -> int:
    return 1


class FleetAdmission:
    def __init__(
        self, limiter: FleetLimiter, *, cost: Cost = unit_cost, breaker: Breaker | None = None,
    ) -> None:
        self.limiter, self.cost = limiter, cost
        self.breaker = breaker or Breaker()
        self.skipped = 0          # requests admitted unchecked while the breaker was open
        self._told = 0.0          # when the last "skipping" line was logged

    async def __call__(
        self, principal: Principal, state: dict[str, Any], scope: dict[str, Any]
    ) -> None:
        if not self.breaker.allow():
            # Fail open: the edge PoPs still limit, and an outage of the limits store must not
            # become an outage (or a timeout per request) of the service.
            self.skipped += 1
            if time.monotonic() - self._told > 10:
                self._told = time.monotonic()
                log.warning("limits store breaker open; %d request(s) admitted on PoP limits "
                            "alone so far", self.skipped)
            return
        units = self.cost(str(scope.get("method", "GET")), str(scope.get("path", "")),
                          bytes(state.get("body") or b""))
        try:
            decision = await self.limiter.hit(principal.sub, principal.tier, max(1, units),
                                              edge_lease=lease_wanted(state))
        except FleetUnavailable as exc:
            self.breaker.failure()
            log.warning("%s; admitting %s on PoP limits alone (breaker %s)",
                        exc, principal.sub, self.breaker.state)
            return
        self.breaker.success()
        state["response_headers"] = decision.headers()
        if not decision.allowed:
            metrics.RATE_LIMITED.labels(principal.tier).inc()  # tiers: a handful of values
            raise decision.problem()
