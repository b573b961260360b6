"""poller.PollLoop's schedule: supervision at the busy interval only while there is work.

The loop runs on a hand-driven clock: its sleep advances the clock instead of waiting, so the
schedule is checked exactly and no test depends on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from cpworker import poller
from cpworker.ratebudget import Lane, RateBudget


class Schedule:
    """A PollLoop that never polls (no target), on a fake clock, recording its rounds."""

    def __init__(self, *, busy: Callable[[float], bool], until: float) -> None:
        self.now = 0.0
        self.until = until
        self.rounds: list[float] = []
        self.wakes: dict[float, Callable[[], None]] = {}

        async def tend() -> None:
            self.rounds.append(self.now)

        async def nothing(*_args: Any) -> None:
            return None

        async def client() -> Any:
            raise AssertionError("a loop without a target never polls")

        self.loop = poller.PollLoop(
            client=client,
            target=lambda: None,
            live_jobs=lambda: 0,
            handle_jobs=nothing,
            tend=tend,
            report=nothing,
            slow_retry_interval=10_000.0,
            tend_interval=5.0,
            has_work=lambda: busy(self.now),
            clock=lambda: self.now,
        )

        async def sleep(delay: float) -> None:
            wake_at = min((t for t in self.wakes if self.now < t <= self.now + delay), default=None)
            if wake_at is not None:
                self.now = wake_at
                self.wakes.pop(wake_at)()
            else:
                self.now += delay

        self.loop.sleep = sleep  # type: ignore[method-assign]

    async def run(self) -> list[float]:
        await self.loop.run(lambda: self.now >= self.until)
        return self.rounds


async def test_a_worker_with_nothing_in_flight_is_supervised_only_as_a_safety_net() -> None:
    rounds = await Schedule(busy=lambda _now: False, until=600.0).run()
    assert rounds == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0]


async def test_a_worker_with_jobs_is_supervised_at_its_interval() -> None:
    rounds = await Schedule(busy=lambda now: now < 30.0, until=200.0).run()
    assert rounds[:7] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    assert rounds[7:] == [90.0, 150.0]  # idle again from the round that found nothing


async def test_a_job_event_brings_the_next_round_to_the_busy_interval() -> None:
    schedule = Schedule(busy=lambda now: now >= 100.0, until=130.0)
    schedule.wakes[100.0] = schedule.loop.job_changed  # a Job of this worker changed
    rounds = await schedule.run()
    assert rounds == [0.0, 60.0, 105.0, 110.0, 115.0, 120.0, 125.0]


async def test_a_finished_job_brings_the_round_forward_too() -> None:
    schedule = Schedule(busy=lambda now: 100.0 <= now < 110.0, until=200.0)
    schedule.wakes[100.0] = schedule.loop.poll_now  # what a finished Job's event calls
    rounds = await schedule.run()
    assert rounds == [0.0, 60.0, 105.0, 110.0, 170.0]


# ---- an event while the worker's idle poll waits in the rate budget -------------------------


class BudgetOnlyClient:
    """A CodePipeline client whose polls only wait in a real rate budget, then find nothing."""

    def __init__(self, budget: RateBudget) -> None:
        self.budget = budget
        self.served: list[Lane] = []

    async def poll_for_jobs(
        self, *_args: Any, lane: Lane, who: Hashable | None = None
    ) -> list[dict[str, Any]]:
        await self.budget.acquire(lane, who=who)
        self.served.append(lane)
        return []


async def test_an_event_promotes_the_idle_poll_its_worker_is_already_waiting_in() -> None:
    """Found at 10,000 workers: the event set the next poll urgent, but the worker's loop
    was inside an idle poll queued behind thousands of others, and stayed there."""
    # One token left and a fake clock that never refills: an idle poll, which leaves the
    # reserve for urgent calls, waits for good; an urgent one takes the token.
    budget = RateBudget(rate=1.0, burst=2, clock=lambda: 0.0, urgent_reserve=1)
    await budget.acquire()
    fake = BudgetOnlyClient(budget)

    async def client() -> Any:
        return fake

    async def nothing(*_args: Any) -> None:
        return None

    reported: list[poller.PollOutcome] = []

    async def report(outcome: poller.PollOutcome) -> None:
        reported.append(outcome)

    loop = poller.PollLoop(
        client=client,
        target=lambda: poller.PollTarget(
            action_type_id={
                "category": "Build",
                "owner": "Custom",
                "provider": "P",
                "version": "1",
            },
            query_param=None,
            max_in_flight=1,
            batch_cap=1,
            min_interval=1.0,
            max_interval=60.0,
        ),
        live_jobs=lambda: 0,
        handle_jobs=nothing,
        tend=nothing,
        report=report,
        budget_key="w",
    )
    cycle = asyncio.create_task(loop.poll_cycle())
    for _ in range(3):
        await asyncio.sleep(0)
    assert budget.queued(Lane.POLL) == 1
    assert not cycle.done()
    loop.event_arrived()
    await asyncio.wait_for(cycle, timeout=5)
    assert fake.served == [Lane.POLL]  # the same poll, served from the urgent lane
    # What it finds was announced: a job it brings must not count as one no event announced
    # (which would turn the worker to polling only).
    assert [outcome.woken_by_event for outcome in reported] == [True]
