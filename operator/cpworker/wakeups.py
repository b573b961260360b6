"""What wakes a worker besides its idle timer, and how long it may idle. Pure.

With a healthy events queue a job's STARTED event wakes its workers at once, so idle polls
are only a safety net and may be rare (the events ceiling). Whenever events cannot be relied
on — the queue cannot be read, or a job arrived that no event announced — a worker goes back
to its own polling policy, and its status says so.
"""

from __future__ import annotations

import enum


class Wakeups(enum.StrEnum):
    """What wakes a worker besides its idle timer."""

    NONE = "none"  # no events queue configured: the polling policy is all there is
    EVENTS = "events"  # the events queue works: idle polls are only a safety net
    LOST = "lost"  # the events queue cannot be read: back to the polling policy
    SILENT = "silent"  # a job arrived that no event announced: back to the polling policy


def idle_ceiling(policy_ceiling: float, wakeups: Wakeups, events_ceiling: float) -> float:
    """The longest idle pause between polls: the worker's policy, raised to the events ceiling
    only while events are known to work (a lost event then costs at most that long)."""
    if wakeups is Wakeups.EVENTS:
        return max(policy_ceiling, events_ceiling)
    return policy_ceiling


def wakeups(
    *,
    queue_configured: bool,
    queue_healthy: bool,
    missed_event_at: float | None,
    now: float,
    fallback_seconds: float,
) -> Wakeups:
    """Whether a worker may rely on events now (`now`, `missed_event_at`: monotonic time)."""
    if not queue_configured:
        return Wakeups.NONE
    if not queue_healthy:
        return Wakeups.LOST
    if missed_event_at is not None and now - missed_event_at < fallback_seconds:
        return Wakeups.SILENT
    return Wakeups.EVENTS
