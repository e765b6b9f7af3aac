"""When the supervisor restarts a dead child: at once the first time, then with a backoff that
doubles (0.5 s up to 10 s) while the child keeps dying, and not at all once it has died
``loop_cap`` times without ever staying up ``healthy_reset_s`` (a crash loop: restarting it
again only burns the machine and floods its log; a person must look).

Pure logic with the clock passed in, so it is tested without sleeping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Decision = Literal["ok", "wait", "restart", "give_up", "given_up"]


@dataclass(frozen=True, slots=True)
class Policy:
    first_s: float = 0.5
    max_s: float = 10.0
    healthy_reset_s: float = 30.0
    loop_cap: int = 8

    def delay(self, failures: int) -> float:
        """The pause before the restart that follows ``failures`` restarts in a row."""
        if failures <= 0:
            return 0.0
        return min(self.first_s * 2 ** min(failures - 1, 30), self.max_s)


@dataclass(slots=True)
class ChildBackoff:
    """One child's restart history, as the supervisor sees it poll after poll."""

    failures: int = 0  # restarts since the child last stayed up healthy_reset_s
    next_at: float = 0.0  # no restart before this time
    up_since: float | None = None
    gave_up: bool = False

    def observe(self, now: float, alive: bool, policy: Policy) -> Decision:
        if alive:
            if self.up_since is None:
                self.up_since = now
                # Alive again after we gave up: someone (``up``, ``start_process``) fixed it,
                # so the next crash is handled again, still with the backoff it earned.
                self.gave_up = False
            if now - self.up_since >= policy.healthy_reset_s:
                self.failures = 0
            return "ok"
        self.up_since = None
        if self.gave_up:
            return "given_up"
        if self.failures >= policy.loop_cap:
            self.gave_up = True
            return "give_up"
        if now < self.next_at:
            return "wait"
        self.failures += 1
        self.next_at = now + policy.delay(self.failures)
        return "restart"
