"""Restart safety at every named crash point: a fresh operator finishes the job exactly once.

The unit-test twin of tests/e2e/test_restart_and_canary.py. The first operator life runs the
job until the stage hook named by the test fires (`Crash` ends it, as `os._exit` would); a
second life, knowing nothing, then runs over what was left behind while the world carries on
(`settle`). Whatever the crash point, the job ends with one Kubernetes Job, one pod and one
result accepted by CodePipeline.
"""

from __future__ import annotations

from typing import Any

import pytest

from cpworker import jobrecord, names
from tests.unit.protocol.world import (
    NAMESPACE,
    WORKER,
    Clock,
    Crash,
    Life,
    WallClock,
    World,
    crash_at,
    job_name,
)

AGE = 60.0  # past the claim recovery age and the report lease


async def first_life(world: World, stage: str) -> dict[str, Any]:
    """Poll a job and run it until the operator dies at `stage`."""
    raw = world.polled()
    life = world.life(hook=crash_at(stage))

    async def run() -> None:
        await life.claim(raw)
        world.start_pod(raw["id"])
        world.succeed(raw["id"])
        await life.supervise()

    with pytest.raises(Crash, match=stage):
        await run()
    return raw


async def settle(
    world: World, life: Life, job_id: str, wall: WallClock, *, redeliver: bool
) -> None:
    """A restarted operator's next few rounds, with the world carrying on: a delivery nobody
    acknowledged is handed out again by a later poll (when `redeliver`), time passes, and the
    Job controller runs a released Job to success."""
    for _ in range(4):
        if redeliver and world.cp.jobs[job_id].status == "Dispatched":
            await life.claim(world.cp.deliver(job_id))
        for each in world.kube.objects("jobs"):
            world.kube.age("jobs", NAMESPACE, each["metadata"]["name"], AGE)
        wall.advance(AGE)
        await life.supervise()
        job = world.job(job_id)
        if job is not None and not job["spec"]["suspend"] and not world.pods_of(job_name(job_id)):
            world.start_pod(job_id)
            world.succeed(job_id)


def counter(world: World, name: str) -> int:
    worker = world.kube.get_object("customactionworkers", NAMESPACE, WORKER) or {}
    return int((worker.get("status") or {}).get(name) or 0)


# (stage, whether CodePipeline hands the unacknowledged job out again before recovery runs)
CASES = [
    ("before-job", True),  # polled, nothing written yet: only a redelivery can bring it back
    ("before-secret", False),  # suspended Job, no Secret: recovery re-creates the Secret
    ("before-secret", True),  # ... or the redelivery finds the Job and writes the Secret
    ("before-ack", False),  # Job and Secret, not acknowledged: recovery acknowledges
    ("before-ack", True),  # ... or the redelivery's nonce does
    ("after-ack", False),  # acknowledged (CodePipeline delivers it no more), Job suspended
    ("before-release", False),  # the winning nonce recorded, Job suspended
    ("after-release", False),  # running; its JobDispatched event never posted
    ("after-put", False),  # result accepted, not yet counted, the Job not yet marked reported
    ("after-count", False),  # result accepted and counted, the Job not yet marked reported
]


@pytest.mark.parametrize(("stage", "redeliver"), CASES)
async def test_a_fresh_operator_finishes_the_job_exactly_once(
    world: World, wall: WallClock, stage: str, redeliver: bool
) -> None:
    raw = await first_life(world, stage)
    job_id = raw["id"]
    left = world.job(job_id)

    await settle(world, world.life(), job_id, wall, redeliver=redeliver)

    [job] = world.kube.objects("jobs")
    if left is not None:
        assert job["metadata"]["uid"] == left["metadata"]["uid"], "the Job was re-created"
    assert len(world.kube.objects("pods")) == 1
    [accepted] = world.cp.accepted_for(job_id)
    assert accepted.succeeded
    assert world.cp.jobs[job_id].status == "Succeeded"
    assert jobrecord.phase_of(job) == "reported"
    assert world.secret(job_id) is None
    ended = [r for r in world.kube.event_reasons() if r in {"JobSucceeded", "JobAlreadyEnded"}]
    # After a crash past the Put, the Put is repeated once the lease expires; CodePipeline says
    # "already ended" and, asked with the recorded nonce, that it holds this success.
    assert len(world.cp.puts) == (2 if stage in {"after-put", "after-count"} else 1)
    assert ended == ["JobSucceeded"]
    # Counted exactly once, wherever the crash came (it undercounted after "after-put").
    assert counter(world, "succeeded") == 1
    assert counter(world, "failed") == 0


async def test_a_crashed_reporters_lease_holds_off_the_next_reporter_until_it_expires(
    peered: World, wall: WallClock
) -> None:
    raw = await first_life(peered, "after-put")
    life = peered.life()
    await life.supervise()
    assert len(peered.cp.puts) == 1  # the lease (30 s) still holds
    lease = peered.settings.report_lease_seconds
    assert lease is not None
    wall.advance(lease + 1)
    await life.supervise()
    assert len(peered.cp.puts) == 2
    assert jobrecord.phase_of(peered.job(raw["id"]) or {}) == "reported"


async def handed_over_and_crashed(world: World) -> tuple[str, Clock]:
    """A running job whose hand-over Put was accepted; the operator died before recording it."""
    world.settings = world.settings.model_copy(update={"continuation_after_seconds": 60.0})
    raw = world.polled()
    clock = Clock()
    life = world.life(hook=crash_at("after-handover"), clock=clock)
    await life.claim(raw)
    world.start_pod(raw["id"])
    await life.supervise()  # starts the hand-over clock
    clock.advance(61)
    with pytest.raises(Crash, match="after-handover"):
        await life.supervise()
    annotations = world.annotations(raw["id"])
    assert annotations[names.ANNOTATION_HANDOVER_OF] == raw["id"]
    assert names.ANNOTATION_RESULT not in annotations
    return raw["id"], clock


@pytest.mark.parametrize("probe_first", [True, False])
async def test_a_crash_after_the_hand_over_neither_cancels_nor_loses_the_job(
    world: World, probe_first: bool
) -> None:
    first, clock = await handed_over_and_crashed(world)
    follow_up = world.cp.continuations[first]
    life = world.life(clock=clock)
    if probe_first:
        # CodePipeline says "Succeeded" to the probe: our own hand-over, not a stop.
        await life.supervise()
        assert world.annotations(first)[names.ANNOTATION_RESULT] == "continued"
    await life.claim(world.cp.deliver(follow_up))
    world.succeed(first)
    await life.supervise()

    [job] = world.kube.objects("jobs")
    assert job["metadata"]["annotations"][names.ANNOTATION_JOB_ID] == follow_up
    assert jobrecord.phase_of(job) == "reported"
    assert "JobCancelled" not in world.kube.event_reasons()
    [handover] = world.cp.accepted_for(first)
    assert handover.params["continuationToken"]
    [final] = world.cp.accepted_for(follow_up)
    assert final.succeeded
    assert "continuationToken" not in final.params
    assert len(world.kube.objects("pods")) == 1
