"""Hub health as one circuit breaker per hub, fed by passive and active observations.

    CLOSED ──failures ≥ threshold (or one hard failure)──▶ OPEN
    OPEN ──cool-down elapsed──▶ HALF_OPEN ──claim_probe()──▶ one probe in flight
    probe or any request succeeds ──▶ CLOSED;  probe fails ──▶ OPEN (cool-down restarts)

Passive: the edge records the outcome of every forwarded request. Active: a ``/healthz`` probe
(a background loop locally, a cron trigger or a half-open probe in the Worker) reports through
``observe_probe``. Pure: no I/O; time comes from the injected clock so tests can step it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probe_deadline: float | None = None


class HealthBook:
    def __init__(
        self,
        regions: Iterable[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        failure_threshold: int = 2,
        cooldown_s: float = 5.0,
        probe_timeout_s: float = 3.0,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._clock = clock
        self._threshold = failure_threshold
        self._cooldown = cooldown_s
        # A probe that never reports back (its task died with an isolate) must not keep the
        # circuit half-open forever: its claim lapses after this long.
        self._probe_timeout = probe_timeout_s
        self._circuits = {r: _Circuit() for r in regions}

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self._circuits)

    def state(self, region: str) -> CircuitState:
        c = self._circuits[region]
        if c.opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - c.opened_at < self._cooldown:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def is_healthy(self, region: str) -> bool:
        return self.state(region) is CircuitState.CLOSED

    def claim_probe(self, region: str) -> bool:
        """True for exactly one caller per half-open period: that caller sends the probe."""
        if self.state(region) is not CircuitState.HALF_OPEN:
            return False
        c, now = self._circuits[region], self._clock()
        if c.probe_deadline is not None and now < c.probe_deadline:
            return False
        c.probe_deadline = now + self._probe_timeout
        return True

    def record_success(self, region: str) -> None:
        c = self._circuits[region]
        c.failures, c.opened_at, c.probe_deadline = 0, None, None

    def record_failure(self, region: str, *, hard: bool = False) -> None:
        """``hard``: a failure that proves the hub is down (connection refused), not just slow."""
        c = self._circuits[region]
        c.failures += 1
        half_open = c.opened_at is not None
        if hard or half_open or c.failures >= self._threshold:
            c.opened_at, c.probe_deadline = self._clock(), None

    def observe_probe(self, region: str, ok: bool) -> None:
        """An active ``/healthz`` answer is authoritative either way."""
        if ok:
            self.record_success(region)
        else:
            self.record_failure(region, hard=True)

    def apply(self, snapshot: Mapping[str, bool]) -> None:
        """Health learned elsewhere (the Worker's cron probe, via KV). Only moves a circuit when
        the snapshot disagrees with it, so a fresh local observation is not thrown away by a
        stale remote one that agrees."""
        for region, ok in snapshot.items():
            if region not in self._circuits:
                continue
            healthy = self.state(region) is CircuitState.CLOSED
            if ok and self.state(region) is CircuitState.HALF_OPEN:
                self.record_success(region)
            elif not ok and healthy:
                self.record_failure(region, hard=True)

    def retry_after_s(self) -> float:
        """How long until some open circuit may be tried again (0 when one is usable now)."""
        now, waits = self._clock(), []
        for c in self._circuits.values():
            if c.opened_at is None:
                return 0.0
            waits.append(max(0.0, c.opened_at + self._cooldown - now))
        return min(waits, default=0.0)

    def snapshot(self) -> dict[str, str]:
        return {r: self.state(r).value for r in self._circuits}
