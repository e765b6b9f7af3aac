"""The open-loop load: requests leave on a fixed schedule (``rate`` per second, spread over every
region's edge) whether or not earlier ones answered, and each one's latency is measured from
its scheduled time, so a stall that holds requests back shows up in full.

``OpenLoop`` only schedules and times; what a request does is an async callable returning
``(op, region, status, ok)`` (``ops.Mix`` in a drill, a stand-in in the unit tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ops.drills.stats import Sample

# request number -> (op, region, status, ok); the callable retries within its own budget.
Send = Callable[[int], Awaitable[tuple[str, str, str, bool]]]

# Requests in flight beyond this are not sent but counted as failed ("client-saturated"): an
# open loop against a dead service otherwise piles up sockets until the drill itself fails.
MAX_IN_FLIGHT = 512


def intended_times(rate: float, start: float, stop: float) -> list[float]:
    """The schedule: one request every 1/rate seconds from ``start`` until before ``stop``."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    count = max(0, int((stop - start) * rate - 1e-9) + 1) if stop > start else 0
    return [start + i / rate for i in range(count)]


class OpenLoop:
    def __init__(self, send: Send, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._send, self.rate, self._clock = send, rate, clock
        self._max_in_flight = max_in_flight
        self.samples: list[Sample] = []
        self.origin = clock()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        """Seconds since the load's origin: the time axis of every sample and event."""
        return self._clock() - self.origin

    def stop(self) -> None:
        self._stopping = True

    async def run(self, duration: float | None = None) -> None:
        """Sends on schedule until ``stop()`` or ``duration`` seconds, then waits for the
        answers still on their way (each bounded by the sender's own timeouts)."""
        i = 0
        while not self._stopping:
            at = i / self.rate
            if duration is not None and at >= duration:
                break
            delay = at - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(self._tasks) >= self._max_in_flight:
                self.samples.append(Sample(at, self.now(), "any", "-", "client-saturated", False))
            else:
                task = asyncio.create_task(self._one(i, at))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            i += 1
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _one(self, i: int, intended: float) -> None:
        try:
            op, region, status, ok = await self._send(i)
        except Exception as exc:  # a sender bug must not end the drill; it is a failed sample
            op, region, status, ok = "any", "-", type(exc).__name__, False
        self.samples.append(Sample(intended, self.now(), op, region, status, ok))
