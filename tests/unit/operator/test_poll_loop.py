"""poller.PollLoop's schedule: supervision at the busy interval only while there is work.

The loop runs on a hand-driven clock: its sleep advances the clock instead of waiting, so the
schedule is checked exactly and no test depends on timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpworker import poller


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
