"""Whether events are working for an action type: a job found by an idle poll counts as
unannounced only when no event for its action type came within the grace on either side."""

from __future__ import annotations

import asyncio

from tests.unit.protocol.world import World

KEY = ("Build", "Custom", "AcmeGpuBuild", "1")


async def test_an_event_just_before_the_poll_announced_the_job(world: World) -> None:
    runtime = world.life().runtime
    runtime.event_grace_seconds = 0.05
    runtime.event_seen(KEY)
    runtime.job_without_event(KEY)
    await asyncio.sleep(0.1)
    assert KEY not in runtime.missed_event_at


async def test_an_event_just_after_the_poll_announced_the_job_too(world: World) -> None:
    runtime = world.life().runtime
    runtime.event_grace_seconds = 0.05
    runtime.job_without_event(KEY)
    runtime.event_seen(KEY)  # the poll was a moment faster than the event
    await asyncio.sleep(0.1)
    assert KEY not in runtime.missed_event_at


async def test_no_event_within_the_grace_means_events_are_not_arriving(world: World) -> None:
    runtime = world.life().runtime
    runtime.event_grace_seconds = 0.05
    runtime.job_without_event(KEY)
    await asyncio.sleep(0.1)
    assert KEY in runtime.missed_event_at
    runtime.event_seen(KEY)  # events come again: back to relying on them
    assert KEY not in runtime.missed_event_at
