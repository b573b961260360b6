"""The worker's status writes: a change that only counts settles into one trailing write, a
change of Ready is written at once, and an older status never lands after a newer one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cpworker.kube import KubeError
from cpworker.workerstatus import StatusPublisher

SETTLE = 0.05  # short, so that the trailing write comes soon; nothing here measures it


class Recorder:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.refuse = False
        self.hold: asyncio.Event | None = None
        self.sent = asyncio.Event()

    async def write(self, patch: dict[str, Any]) -> None:
        self.sent.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.refuse:
            raise KubeError("PATCH", "status", 500, "InternalError", "boom")
        self.patches.append(patch)

    def in_flight(self) -> list[int]:
        return [p["inFlight"] for p in self.patches]

    def reasons(self) -> list[str]:
        return [p["conditions"][0]["reason"] for p in self.patches]


def publisher(recorder: Recorder) -> StatusPublisher:
    return StatusPublisher(recorder.write, refresh_seconds=3600.0, settle_seconds=SETTLE)


async def show(
    p: StatusPublisher, in_flight: int, reason: str = "Polling", *, ready: bool = True
) -> None:
    await p.publish(
        ready=ready, reason=reason, message="polling for jobs", generation=1, in_flight=in_flight
    )


async def test_a_burst_of_in_flight_changes_is_one_trailing_write_of_the_latest() -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 1)
    for n in range(2, 11):
        await show(p, n)
    assert recorder.in_flight() == [1]  # the first write, then the burst settles
    await p.settled()
    assert recorder.in_flight() == [1, 10]


async def test_a_change_of_reason_is_written_at_once_and_not_overtaken() -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 1)
    await show(p, 3)  # deferred
    await show(p, 4, "PollingOnly")  # significant: now, carrying the latest count
    await p.settled()
    assert list(zip(recorder.reasons(), recorder.in_flight(), strict=True)) == [
        ("Polling", 1),
        ("PollingOnly", 4),
    ]


async def test_a_trailing_write_in_progress_is_followed_not_overtaken() -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 1)
    recorder.hold = asyncio.Event()
    recorder.sent.clear()
    await show(p, 2)  # its trailing write will block in the API call
    await asyncio.wait_for(recorder.sent.wait(), timeout=10)
    urgent = asyncio.ensure_future(show(p, 3, "NotReady", ready=False))
    await asyncio.sleep(0)
    recorder.hold.set()
    await urgent
    await p.settled()
    assert recorder.reasons()[-1] == "NotReady"
    assert recorder.in_flight() == [1, 2, 3]


async def test_the_last_job_ending_is_written_at_once() -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 2)
    await show(p, 1)  # settles
    await show(p, 0)  # idle again: at once
    assert recorder.in_flight() == [2, 0]
    await show(p, 1)  # busy again: at once
    assert recorder.in_flight() == [2, 0, 1]


async def test_back_to_the_written_value_writes_nothing() -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 1)
    await show(p, 2)
    await show(p, 1)
    await p.settled()
    assert recorder.in_flight() == [1]


async def test_a_closed_publisher_writes_nothing_more() -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 1)
    await show(p, 5)
    p.close()
    await asyncio.sleep(SETTLE * 3)
    assert recorder.in_flight() == [1]


@pytest.mark.parametrize("deferred", [False, True])
async def test_a_refused_write_is_written_by_the_next_change(deferred: bool) -> None:
    recorder = Recorder()
    p = publisher(recorder)
    await show(p, 1)
    recorder.refuse = True
    if deferred:
        await show(p, 2)
        await p.settled()
    else:
        await show(p, 2, "PollingOnly")
    recorder.refuse = False
    await show(p, 3, "PollingOnly")
    await p.settled()
    assert recorder.in_flight()[-1] == 3
