"""The shared rate budget: urgent calls first, FIFO within a lane, idle polls spaced when the
fleet asks for more than the budget carries."""

from __future__ import annotations

import asyncio

import pytest

from cpworker.ratebudget import POLL_SHARE, Lane, PollDemand, RateBudget


class FakeClock:
    """A clock the test moves (the budget's refill reads it; waits use the loop)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_burst_is_granted_at_once_then_the_rate_applies() -> None:
    budget = RateBudget(rate=100.0, burst=3)
    waits = [await budget.acquire() for _ in range(3)]
    assert waits == [0.0, 0.0, 0.0]
    assert budget.granted == 3
    # The fourth waits for a token: about 1/rate seconds (never less than zero).
    assert await budget.acquire() >= 0.0
    assert budget.granted == 4


async def test_urgent_calls_are_served_before_queued_polls() -> None:
    budget = RateBudget(rate=50.0, burst=1)
    await budget.acquire()  # the bucket is empty now
    order: list[str] = []

    async def call(lane: Lane, label: str) -> None:
        await budget.acquire(lane)
        order.append(label)

    polls = [asyncio.create_task(call(Lane.POLL, f"poll{i}")) for i in range(5)]
    await asyncio.sleep(0)  # the polls queue first
    urgent = asyncio.create_task(call(Lane.URGENT, "claim"))
    await asyncio.gather(*polls, urgent)
    # The claim arrived after five queued polls and went first all the same.
    assert order[0] == "claim"
    assert order[1:] == [f"poll{i}" for i in range(5)]  # FIFO within the lane


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    budget = RateBudget(rate=20.0, burst=1)
    await budget.acquire()
    first = asyncio.create_task(budget.acquire(Lane.POLL))
    second = asyncio.create_task(budget.acquire(Lane.POLL))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=5)
    assert budget.granted == 2  # the cancelled call never took a token


async def test_an_event_moves_a_waiting_idle_poll_ahead_of_the_others() -> None:
    """Found at 10,000 workers: 8,305 idle polls queued for minutes, and the worker an event
    woke was waiting among them, so its job waited too."""
    budget = RateBudget(rate=50.0, burst=1)
    await budget.acquire()  # the bucket is empty now
    order: list[str] = []

    async def poll(worker: str) -> None:
        await budget.acquire(Lane.POLL, who=worker)
        order.append(worker)

    polls = [asyncio.create_task(poll(f"w{i}")) for i in range(5)]
    await asyncio.sleep(0)  # all five queue
    assert budget.promote("w3") is True
    assert budget.queued(Lane.URGENT) == 1
    await asyncio.gather(*polls)
    assert order == ["w3", "w0", "w1", "w2", "w4"]
    # Once served, there is nothing of w3's to promote.
    assert budget.promote("w3") is False


async def test_a_promoted_poll_does_not_wait_for_the_reserve_kept_for_urgent_calls() -> None:
    budget = RateBudget(rate=2.0, burst=3, clock=FakeClock(), urgent_reserve=2)  # no refill
    for _ in range(2):
        await budget.acquire()  # one token left: below what an idle poll needs (1 + 2)
    waiting = asyncio.create_task(budget.acquire(Lane.POLL, who="w"))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert budget.promote("w") is True
    await asyncio.sleep(0)
    assert waiting.done(), "served from the one token there: a promoted poll keeps no reserve"


async def test_nothing_is_promoted_for_a_worker_without_a_waiting_poll() -> None:
    budget = RateBudget(rate=50.0, burst=1)
    assert budget.promote("nobody") is False
    await budget.acquire()
    urgent = asyncio.create_task(budget.acquire(Lane.URGENT))
    anonymous = asyncio.create_task(budget.acquire(Lane.POLL))  # names no worker
    await asyncio.sleep(0)
    assert budget.promote("nobody") is False
    await asyncio.gather(urgent, anonymous)


async def test_a_promoted_poll_that_is_cancelled_leaves_no_waiter_behind() -> None:
    budget = RateBudget(rate=20.0, burst=1)
    await budget.acquire()
    promoted = asyncio.create_task(budget.acquire(Lane.POLL, who="w"))
    await asyncio.sleep(0)
    budget.promote("w")
    promoted.cancel()
    with pytest.raises(asyncio.CancelledError):
        await promoted
    assert budget.queued(Lane.URGENT) == 0
    assert budget.queued(Lane.POLL) == 0
    await asyncio.wait_for(budget.acquire(Lane.POLL, who="w"), timeout=5)


def test_poll_demand_sums_what_each_worker_asks_for() -> None:
    demand = PollDemand()
    demand.want("a", 60.0)
    demand.want("b", 30.0)
    demand.want("a", 60.0)  # asking again replaces, never adds
    assert demand.workers == 2
    assert demand.calls_per_second == pytest.approx(1 / 60 + 1 / 30)
    demand.drop("b")
    demand.drop("missing")  # harmless
    assert demand.workers == 1
    assert demand.calls_per_second == pytest.approx(1 / 60)
    demand.want("a", 20.0)  # a changed policy replaces the old rate
    assert demand.calls_per_second == pytest.approx(1 / 20)
    demand.drop("a")
    assert demand.calls_per_second == 0.0


def test_idle_intervals_stretch_only_when_the_fleet_exceeds_the_poll_share() -> None:
    budget = RateBudget(rate=5.0, burst=10, clock=FakeClock())
    for worker in range(200):
        budget.demand.want(worker, 60.0)  # 200/60 = 3.3 calls/s: fits in 4 calls/s
    assert budget.stretch == 1.0
    for worker in range(1000):
        budget.demand.want(worker, 60.0)  # 16.7 calls/s: the policy cannot be carried
    expected = (1000 / 60) / (5.0 * POLL_SHARE)
    assert budget.stretch == pytest.approx(expected)
    # Stretched alike, the fleet's idle polls fit the poll share exactly.
    assert budget.demand.calls_per_second / budget.stretch == pytest.approx(5.0 * POLL_SHARE)


def test_a_budget_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateBudget(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        RateBudget(rate=1, burst=0)
