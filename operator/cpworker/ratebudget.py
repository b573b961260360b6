"""How fast the operator may call CodePipeline, and who goes first.

One `RateBudget` (a token bucket) is shared by every worker that calls the same (account,
region), so the operator as a whole never exceeds it however many workers it runs. Calls wait
in two lanes: `URGENT` (acknowledging, reporting, probing, refreshing credentials, polls an
event asked for: a job is waiting on each of them) is always served before `POLL` (idle polls,
which may wait). Without lanes, a thousand idle workers' polls queue ahead of a claim, and a
job that a poll found waits minutes before it is acknowledged.

The budget also knows how often its workers would like to poll when idle (`PollDemand`):
when their policies together ask for more than the poll share of the budget, every idle
interval is stretched by the same factor (`stretch`), so that polls are spaced instead of
queueing, and the workers' status says that polling is budget-limited.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import time
from collections.abc import Callable, Hashable
from typing import Final

# Idle polls may use this share of the budget; the rest stays free for the urgent lane (a
# burst of claims and reports), which is served first anyway.
POLL_SHARE: Final = 0.8


class Lane(enum.IntEnum):
    URGENT = 0
    POLL = 1


class PollDemand:
    """How often the workers sharing one budget want to poll when idle (calls per second)."""

    def __init__(self) -> None:
        self._intervals: dict[Hashable, float] = {}

    def want(self, worker: Hashable, idle_interval: float) -> None:
        """`worker` polls every `idle_interval` seconds when idle (its policy's ceiling)."""
        self._intervals[worker] = max(idle_interval, 1e-3)

    def drop(self, worker: Hashable) -> None:
        """`worker` no longer polls (stopped, paused, invalid)."""
        self._intervals.pop(worker, None)

    @property
    def workers(self) -> int:
        return len(self._intervals)

    @property
    def calls_per_second(self) -> float:
        return sum(1 / interval for interval in self._intervals.values())


class RateBudget:
    """An async token bucket: `rate` calls per second on average, bursts of `burst`, urgent
    calls first. Waiters of one lane are served in arrival order."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.demand = PollDemand()
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = tuple(
            collections.deque() for _ in Lane
        )
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0
        self.waited_seconds = dict.fromkeys(Lane, 0.0)

    @property
    def poll_capacity(self) -> float:
        """Idle polls per second this budget carries."""
        return self.rate * POLL_SHARE

    @property
    def stretch(self) -> float:
        """By how much every idle poll interval must grow for the demand to fit (>= 1)."""
        return max(1.0, self.demand.calls_per_second / self.poll_capacity)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _queued_ahead(self, lane: Lane) -> bool:
        return any(self._waiters[ahead] for ahead in Lane if ahead <= lane)

    async def acquire(self, lane: Lane = Lane.URGENT) -> float:
        """Wait for one token in `lane`; returns the seconds waited."""
        self._refill()
        if self._tokens >= 1 and not self._queued_ahead(lane):
            self._tokens -= 1
            self.granted += 1
            return 0.0
        started = self._clock()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[lane].append(waiter)
        self._arm()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._tokens += 1  # granted as we were cancelled: give it back
                self._release()
            else:
                with contextlib.suppress(ValueError):  # already skipped by a release
                    self._waiters[lane].remove(waiter)
            raise
        waited = self._clock() - started
        self.waited_seconds[lane] += waited
        return waited

    def _arm(self) -> None:
        if self._timer is not None or not any(self._waiters):
            return
        delay = max(0.0, (1 - self._tokens) / self.rate)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._release()

    def _release(self) -> None:
        self._refill()
        for queue in self._waiters:
            while queue and self._tokens >= 1:
                waiter = queue.popleft()
                if waiter.done():
                    continue
                self._tokens -= 1
                self.granted += 1
                waiter.set_result(None)
        self._arm()
