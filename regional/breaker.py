"""A circuit breaker for one dependency (the limits Redis): after ``failures`` failed calls in a
row it opens, and callers skip the dependency instead of paying its timeout each time; after
``cooldown_s`` one caller is let through as a probe, whose success closes it again.

    closed --(failures in a row)--> open --(cooldown)--> half-open --success--> closed
                                      ^                      |
                                      +------failure---------+

In half-open only the probe goes through. A probe that never reports (its request was
cancelled) is replaced after another cooldown, so the breaker cannot stick half-open.
The clock is injected so tests drive time without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half-open"]


class Breaker:
    def __init__(
        self, *, failures: int = 3, cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and cooldown_s > 0")
        self._threshold, self._cooldown, self._clock = failures, cooldown_s, clock
        self.state: State = "closed"
        self.failures = 0      # consecutive failures while closed
        self._since = 0.0      # when it opened, or when the current probe started

    def allow(self) -> bool:
        """Whether a call may go to the dependency now; False means skip it (fail open)."""
        if self.state == "closed":
            return True
        if self._clock() - self._since < self._cooldown:
            return False
        # open and cooled down, or a half-open probe that never reported: let one through
        self.state, self._since = "half-open", self._clock()
        return True

    def success(self) -> None:
        self.state, self.failures = "closed", 0

    def failure(self) -> None:
        if self.state == "closed":
            self.failures += 1
            if self.failures < self._threshold:
                return
        self.state, self._since, self.failures = "open", self._clock(), 0
