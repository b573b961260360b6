"""How fast the operator may call CodePipeline, and who goes first.

One `RateBudget` (a token bucket) is shared by every worker that calls the same (account,
region), so the operator as a whole never exceeds it however many workers it runs. Calls wait
in two lanes: `URGENT` (acknowledging, reporting, probing, refreshing credentials, polls an
event asked for: a job is waiting on each of them) is always served before `POLL` (idle polls,
which may wait). Without lanes, a thousand idle workers' polls queue ahead of a claim, and a
job that a poll found waits minutes before it is acknowledged. An idle poll already waiting
when an event asks for it moves to the urgent lane (`promote`): at 10,000 workers, thousands
of polls queue for minutes, and the event-woken worker was one of them.

Idle polls also leave `urgent_reserve` tokens in the bucket: when polls alone keep the
bucket nearly empty (a budget-limited fleet, the first polls after a start), an urgent call
still finds a token at once instead of waiting for the next one to trickle in — a claim is
three calls in a row, so each wait would count three times in the dispatch latency.

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

    @property
    def label(self) -> str:
        """The lane's name in metrics: `urgent` or `poll`."""
        return self.name.lower()


def urgent_reserve_for(burst: int) -> int:
    """Tokens idle polls leave for urgent calls: a third of the burst (3 of the default 10,
    enough for an event's GetPipeline, its poll and the acknowledgement), none for a burst
    of 1."""
    return max(0, min(burst - 1, burst // 3))


class PollDemand:
    """How often the workers sharing one budget want to poll when idle (calls per second)."""

    def __init__(self) -> None:
        self._intervals: dict[Hashable, float] = {}
        # The sum of 1 / interval, kept as workers come and go: every worker's poll asks for
        # it, and summing a thousand intervals each time was a tenth of the idle CPU.
        self._rate = 0.0

    def want(self, worker: Hashable, idle_interval: float) -> None:
        """`worker` polls every `idle_interval` seconds when idle (its policy's ceiling)."""
        interval = max(idle_interval, 1e-3)
        old = self._intervals.get(worker)
        if old == interval:
            return
        self._intervals[worker] = interval
        self._rate += 1 / interval - (1 / old if old is not None else 0.0)

    def drop(self, worker: Hashable) -> None:
        """`worker` no longer polls (stopped, paused, invalid)."""
        old = self._intervals.pop(worker, None)
        if old is not None:
            # Exact again once nobody polls, so rounding never accumulates for long.
            self._rate = self._rate - 1 / old if self._intervals else 0.0

    @property
    def workers(self) -> int:
        return len(self._intervals)

    @property
    def calls_per_second(self) -> float:
        return max(0.0, self._rate)


class RateBudget:
    """An async token bucket: `rate` calls per second on average, bursts of `burst`, urgent
    calls first. Waiters of one lane are served in arrival order."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        urgent_reserve: int = 0,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if not 0 <= urgent_reserve < burst:
            raise ValueError("urgent_reserve must be >= 0 and below burst")
        self.rate = rate
        self.burst = burst
        self.urgent_reserve = urgent_reserve
        self.demand = PollDemand()
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = tuple(
            collections.deque() for _ in Lane
        )
        self._timer: asyncio.TimerHandle | None = None
        # Idle polls waiting now, by who asked (a worker), so that an event can promote one.
        self._polls: dict[Hashable, asyncio.Future[None]] = {}
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

    def _needed(self, lane: Lane) -> float:
        """Tokens the bucket must hold for `lane` to take one (polls leave the reserve)."""
        return 1.0 if lane is Lane.URGENT else 1.0 + self.urgent_reserve

    def queued(self, lane: Lane) -> int:
        """Calls waiting in `lane` now."""
        return sum(1 for waiter in self._waiters[lane] if not waiter.done())

    async def acquire(self, lane: Lane = Lane.URGENT, *, who: Hashable | None = None) -> float:
        """Wait for one token in `lane`; returns the seconds waited. An idle poll that names
        `who` can be moved to the urgent lane while it waits (`promote`)."""
        self._refill()
        if self._tokens >= self._needed(lane) and not self._queued_ahead(lane):
            self._tokens -= 1
            self.granted += 1
            return 0.0
        started = self._clock()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[lane].append(waiter)
        promotable = who is not None and lane is Lane.POLL
        if promotable:
            self._polls[who] = waiter
        self._arm()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._tokens += 1  # granted as we were cancelled: give it back
                self._release()
            else:
                for queue in self._waiters:  # in either lane: it may have been promoted
                    with contextlib.suppress(ValueError):  # already skipped by a release
                        queue.remove(waiter)
            raise
        finally:
            if promotable and self._polls.get(who) is waiter:
                del self._polls[who]
        waited = self._clock() - started
        self.waited_seconds[lane] += waited
        return waited

    def promote(self, who: Hashable) -> bool:
        """Serve `who`'s waiting idle poll in the urgent lane (an event says a job waits on
        it); False when `who` has no poll waiting."""
        waiter = self._polls.pop(who, None)
        if waiter is None or waiter.done():
            return False
        with contextlib.suppress(ValueError):
            self._waiters[Lane.POLL].remove(waiter)
        self._waiters[Lane.URGENT].append(waiter)
        if self._timer is not None:  # armed for the poll lane's reserve: re-arm for urgent
            self._timer.cancel()
            self._timer = None
        self._release()
        return True

    def _arm(self) -> None:
        if self._timer is not None:
            return
        lane = next((lane for lane in Lane if self._waiters[lane]), None)
        if lane is None:
            return
        delay = max(0.0, (self._needed(lane) - self._tokens) / self.rate)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._release()

    def _release(self) -> None:
        self._refill()
        for lane, queue in zip(Lane, self._waiters, strict=True):
            while queue and self._tokens >= self._needed(lane):
                waiter = queue.popleft()
                if waiter.done():
                    continue
                self._tokens -= 1
                self.granted += 1
                waiter.set_result(None)
            if queue:
                break  # a lane still waiting: the lanes behind it wait too
        self._arm()
