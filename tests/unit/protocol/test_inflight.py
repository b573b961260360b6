"""inflight.InFlightSupervisor: what one supervision round does for each in-flight Job."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from cpworker import jobrecord, jobsecret, names, timestamps, workerloop
from tests.unit.protocol.fakes import invalid_nonce, throttled
from tests.unit.protocol.world import NAMESPACE, WORKER, Clock, Life, World, decoded, job_name


def jobs_writes(world: World, since: int) -> list[tuple[str, str]]:
    return [(w.method, w.resource) for w in world.kube.writes[since:]]


def backdate_credentials(world: World, job_id: str, seconds: float) -> None:
    issued = timestamps.rfc3339(timestamps.now() - dt.timedelta(seconds=seconds))
    world.annotate(job_id, {names.ANNOTATION_CREDENTIALS_ISSUED_AT: issued})


# ---- finished and never-started Jobs -----------------------------------------------------


async def test_a_finished_job_is_reported_once_over_many_rounds(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    for _ in range(3):
        await life.supervise()
    assert len(world.cp.puts) == 1
    assert world.cp.accepted_for(job_id)[0].succeeded
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"


async def test_a_finished_job_the_index_still_shows_running_is_reported_once(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    stale = world.summary(job_id)  # finished, phase running: the index lags the report
    await life.supervise()
    await life.supervisor.supervise([stale], world.pods_of)
    assert len(world.cp.puts) == 1


async def test_a_pod_that_never_starts_is_failed_after_the_grace_and_its_job_deleted(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    grace_minutes = world.settings.never_started_grace_seconds / 60
    world.cannot_pull(job_id, minutes_ago=grace_minutes - 1)
    await life.supervise()
    assert world.cp.puts == []
    world.cannot_pull(job_id, minutes_ago=grace_minutes + 1)
    await life.supervise()
    [failure] = world.cp.accepted_for(job_id)
    assert failure.failure_type == "SystemUnavailable"
    assert "ImagePullBackOff" in failure.params["failureDetails"]["message"]
    assert world.job(job_id) is None
    assert world.secret(job_id) is None
    assert world.kube.event_reasons()[-1] == "JobFailed"


async def test_a_released_job_without_any_pod_is_failed_after_the_grace(world: World) -> None:
    world.settings = world.settings.model_copy(update={"never_started_grace_seconds": 60.0})
    life = world.life()
    raw = world.polled()
    await life.claim(raw)
    await life.supervise()
    assert world.cp.puts == []
    released = timestamps.rfc3339(timestamps.now() - dt.timedelta(seconds=61))
    world.annotate(raw["id"], {names.ANNOTATION_RELEASED_AT: released})
    await life.supervise()
    [failure] = world.cp.accepted_for(raw["id"])
    assert "NoPodCreated" in failure.params["failureDetails"]["message"]


# ---- credentials -------------------------------------------------------------------------


async def test_credentials_are_refreshed_only_when_due(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    await life.supervise()
    assert world.cp.operations("GetJobDetails") == []
    backdate_credentials(world, job_id, world.settings.credentials_refresh_seconds + 1)
    before = decoded(world.secret(job_id))[jobsecret.CREDENTIALS_KEY]
    await life.supervise()
    assert len(world.cp.operations("GetJobDetails")) == 1
    after = decoded(world.secret(job_id))[jobsecret.CREDENTIALS_KEY]
    assert after != before
    assert "fake-session-token" in after
    issued = timestamps.parse(world.annotations(job_id)[names.ANNOTATION_CREDENTIALS_ISSUED_AT])
    assert issued is not None
    assert (timestamps.now() - issued).total_seconds() < 5
    await life.supervise()
    assert len(world.cp.operations("GetJobDetails")) == 1


async def test_a_job_without_a_credentials_time_is_refreshed(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.annotate(job_id, {names.ANNOTATION_CREDENTIALS_ISSUED_AT: None})
    await life.supervise()
    assert len(world.cp.operations("GetJobDetails")) == 1


async def test_a_failed_credential_refresh_does_not_block_the_cancellation_probe(
    world: World,
) -> None:
    """Once the refresh is due, a GetJobDetails that keeps failing (here: CodePipeline no
    longer knows the job, which the probe would take as "cancel it") aborts the round before
    the probe, every round: the Job runs on to its deadline."""
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    backdate_credentials(world, job_id, world.settings.credentials_refresh_seconds + 1)
    world.cp.forget(job_id)
    await life.supervise()
    assert world.job(job_id) is None, "the Job of a job CodePipeline forgot runs on"


# ---- the cancellation probe ---------------------------------------------------------------


async def test_an_in_progress_job_is_left_running_with_no_write(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    writes = len(world.kube.writes)
    await life.supervise()
    assert [c.operation for c in world.cp.calls][-1:] == ["AcknowledgeJob"]
    assert world.cp.calls[-1].nonce == world.annotations(job_id)[names.ANNOTATION_NONCE]
    assert len(world.kube.writes) == writes


async def test_the_probe_runs_once_per_interval_counting_from_the_claim(world: World) -> None:
    """The claim's AcknowledgeJob said InProgress a moment ago: the first probe waits its
    interval from then, and each next one its interval from the last."""
    clock = Clock()
    life = world.life(clock=clock)
    await world.dispatched(life)
    acks = len(world.cp.operations("AcknowledgeJob"))
    await life.supervise()
    assert len(world.cp.operations("AcknowledgeJob")) == acks
    clock.advance(world.settings.cancel_probe_seconds - 1)
    await life.supervise()
    assert len(world.cp.operations("AcknowledgeJob")) == acks
    clock.advance(1)
    await life.supervise()
    await life.supervise()
    assert len(world.cp.operations("AcknowledgeJob")) == acks + 1
    clock.advance(world.settings.cancel_probe_seconds)
    await life.supervise()
    assert len(world.cp.operations("AcknowledgeJob")) == acks + 2


async def test_a_job_another_process_dispatched_is_probed_at_once(world: World) -> None:
    """After a restart nothing is known of the last answer: the first round probes."""
    job_id = await world.dispatched(world.life())
    world.cp.end(job_id, "Failed")
    await world.life().supervise()
    assert world.job(job_id) is None
    assert "JobCancelled" in world.kube.event_reasons()


@pytest.mark.parametrize(
    ("end", "said"),
    [
        ("Failed", "is Failed"),  # pipeline stopped (or superseded)
        ("TimedOut", "is TimedOut"),
        ("forget", "is NotFound"),
        ("redeliver", "is Superseded"),  # another delivery holds it now
    ],
)
async def test_a_job_codepipeline_stopped_is_cancelled_under_a_precondition(
    world: World, end: str, said: str
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    if end == "forget":
        world.cp.forget(job_id)
    elif end == "redeliver":
        nonce = world.annotations(job_id)[names.ANNOTATION_NONCE]
        world.cp.script_ack(job_id, nonce, invalid_nonce(job_id))
    else:
        world.cp.end(job_id, end)
    read = world.job(job_id)
    assert read is not None
    writes = len(world.kube.writes)
    await life.supervise()
    assert world.job(job_id) is None
    assert world.secret(job_id) is None
    patch = world.kube.writes[writes]
    assert (patch.method, patch.resource) == ("PATCH", "jobs")
    assert patch.body["metadata"]["resourceVersion"] == read["metadata"]["resourceVersion"]
    assert patch.body["metadata"]["annotations"] == {names.ANNOTATION_PHASE: "cancelled"}
    [event] = [e for e in world.kube.events if e["reason"] == "JobCancelled"]
    assert said in event["message"]
    assert event["type"] == "Warning"
    assert world.cp.puts == []


async def test_a_job_changed_while_being_cancelled_is_left_alone(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    world.cp.end(job_id, "Failed")
    world.kube.intercept(
        "PATCH",
        "jobs",
        lambda: world.kube.external_patch(
            "jobs", NAMESPACE, job_name(job_id), {"status": {"active": 1}}
        ),
    )
    await life.supervise()
    assert world.kube.writes[-1].status == 409
    assert jobrecord.phase_of(world.job(job_id) or {}) == "running"
    assert "JobCancelled" not in world.kube.event_reasons()


async def test_a_job_reported_by_this_process_is_not_cancelled_by_a_stale_index(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    stale = world.summary(job_id)  # running and unfinished, as the index still says
    world.succeed(job_id)
    await life.supervise()  # reports it: CodePipeline now says Succeeded
    await life.supervisor.supervise([stale], world.pods_of)
    assert world.cp.calls[-1] == world.cp.operations("AcknowledgeJob")[-1]
    assert world.job(job_id) is not None
    assert "JobCancelled" not in world.kube.event_reasons()


async def test_a_job_reported_elsewhere_is_not_cancelled_by_a_stale_index(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    stale = world.summary(job_id)
    world.succeed(job_id)
    await world.life().supervise()  # another replica reported it
    await life.supervisor.supervise([stale], world.pods_of)
    assert world.job(job_id) is not None
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"
    assert "JobCancelled" not in world.kube.event_reasons()


async def test_a_succeeded_job_with_our_hand_over_intent_is_marked_continued_not_cancelled(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    body = world.job(job_id)
    assert body is not None
    await life.records.record_handover_intent(body, job_id)
    world.cp.end(job_id, "Succeeded")  # the continuation Put went through
    await life.supervise()
    assert world.annotations(job_id)[names.ANNOTATION_RESULT] == "continued"
    assert world.job(job_id) is not None
    assert "JobCancelled" not in world.kube.event_reasons()


async def test_one_jobs_error_does_not_stop_the_others(world: World) -> None:
    life = world.life()
    first = await world.dispatched(life)
    second = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    world.cp.script_ack(
        first, world.annotations(first)[names.ANNOTATION_NONCE], throttled("AcknowledgeJob")
    )
    world.cp.end(second, "Failed")
    await life.supervise()
    assert world.job(first) is not None
    assert world.job(second) is None


@pytest.mark.parametrize("phase", ["reported", "cancelled", ""])
async def test_jobs_that_are_not_in_flight_are_not_touched(world: World, phase: str) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.annotate(job_id, {names.ANNOTATION_PHASE: phase or None})
    calls, writes = len(world.cp.calls), len(world.kube.writes)
    await life.supervise()
    assert len(world.cp.calls) == calls
    assert len(world.kube.writes) == writes


async def test_a_job_being_deleted_is_not_touched(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.cp.end(job_id, "Failed")
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {"metadata": {"deletionTimestamp": timestamps.rfc3339(timestamps.now())}},
    )
    calls = len(world.cp.calls)
    await life.supervise()
    assert len(world.cp.calls) == calls


# ---- hand-over -------------------------------------------------------------------------


def with_hand_over(world: World, seconds: float) -> None:
    world.settings = world.settings.model_copy(update={"continuation_after_seconds": seconds})


async def test_a_long_job_is_handed_over_after_continuation_after_seconds(world: World) -> None:
    with_hand_over(world, 60)
    clock = Clock()
    life = world.life(clock=clock)
    job_id = await world.dispatched(life)
    uid = (world.job(job_id) or {})["metadata"]["uid"]
    await life.supervise()
    clock.advance(59)
    await life.supervise()
    assert world.cp.puts == []
    clock.advance(1)
    intent: list[str] = []
    world.kube.intercept(
        "PATCH",
        "jobs",
        lambda: intent.append("PATCH before the Put" if not world.cp.puts else "after"),
    )
    await life.supervise()
    assert intent == ["PATCH before the Put"]
    [handover] = world.cp.accepted_for(job_id)
    token = handover.params["continuationToken"]
    assert token.endswith(f"/{NAMESPACE}/{job_name(job_id)}/{uid}")
    assert "outputVariables" not in handover.params
    annotations = world.annotations(job_id)
    assert annotations[names.ANNOTATION_HANDOVER_OF] == job_id
    assert annotations[names.ANNOTATION_RESULT] == "continued"
    assert jobrecord.phase_of(world.job(job_id) or {}) == "running"
    assert world.kube.event_reasons()[-1] == "JobHandedOver"
    # Handed over: no more probes, refreshes or hand-overs until the continuation arrives.
    clock.advance(3600)
    calls = len(world.cp.calls)
    await life.supervise()
    assert len(world.cp.calls) == calls


async def test_no_hand_over_when_disabled(world: World) -> None:
    clock = Clock()
    life = world.life(clock=clock)
    await world.dispatched(life)
    for _ in range(3):
        clock.advance(10_000)
        await life.supervise()
    assert world.cp.puts == []


async def test_a_hand_over_refused_because_the_job_ended_records_nothing(world: World) -> None:
    with_hand_over(world, 60)
    clock = Clock()
    life = world.life(clock=clock)
    job_id = await world.dispatched(life)
    await life.supervise()
    clock.advance(61)
    nonce = world.annotations(job_id)[names.ANNOTATION_NONCE]
    world.cp.script_ack(job_id, nonce, "InProgress")  # the probe still heard InProgress
    world.cp.end(job_id, "TimedOut")
    await life.supervise()
    assert world.cp.accepted == []
    assert names.ANNOTATION_RESULT not in world.annotations(job_id)
    assert "JobHandedOver" not in world.kube.event_reasons()


async def test_a_handed_over_job_that_finishes_waits_for_its_continuation(world: World) -> None:
    with_hand_over(world, 60)
    clock = Clock()
    life = world.life(clock=clock)
    job_id = await world.dispatched(life)
    await life.supervise()
    clock.advance(61)
    await life.supervise()
    world.succeed(job_id)
    await life.supervise()
    assert len(world.cp.accepted) == 1  # only the hand-over
    follow_up = world.cp.continuations[job_id]
    await life.claim(world.cp.deliver(follow_up))
    await life.supervise()
    [final] = world.cp.accepted_for(follow_up)
    assert final.succeeded


async def test_a_job_gone_before_its_cancellation_is_left_gone(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.cp.end(job_id, "Failed")
    seen = world.index()
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    writes = len(world.kube.writes)
    await life.supervisor.supervise(seen, world.pods_of)
    assert len(world.kube.writes) == writes
    assert "JobCancelled" not in world.kube.event_reasons()


async def test_a_job_that_left_the_index_is_probed_at_once_when_it_is_back(world: World) -> None:
    clock = Clock()
    life = world.life(clock=clock)
    await world.dispatched(life)
    seen = world.index()
    await life.supervisor.supervise(seen, world.pods_of)
    acks = len(world.cp.operations("AcknowledgeJob"))
    await life.supervisor.supervise([], world.pods_of)  # its memory of the Job goes
    await life.supervisor.supervise(seen, world.pods_of)
    assert len(world.cp.operations("AcknowledgeJob")) == acks + 1


async def test_a_handed_over_job_whose_continuation_never_comes_stops_counting_against_capacity(
    world: World,
) -> None:
    """The pipeline was stopped after the hand-over, so the continuation job is never
    delivered. The Job (phase running, result continued) is never reported, never gets its
    TTL and counts as live against maxInFlight for ever; enough of them stop the worker."""
    with_hand_over(world, 60)
    clock = Clock()
    life = world.life(clock=clock)
    job_id = await world.dispatched(life)
    await life.supervise()
    clock.advance(61)
    await life.supervise()
    world.cp.end(world.cp.continuations[job_id], "Failed")  # stopped: never delivered
    world.succeed(job_id)
    hours_ago = timestamps.rfc3339(timestamps.now() - dt.timedelta(hours=2))
    world.kube.external_patch(
        "jobs", NAMESPACE, job_name(job_id), {"status": {"completionTime": hours_ago}}
    )
    world.kube.age("jobs", NAMESPACE, job_name(job_id), 3 * 3600)
    for _ in range(3):
        clock.advance(3600)
        await life.supervise()
    assert not world.summary(job_id).live, "the finished Job holds a slot for ever"


async def report_in_flight(world: World, life: Life, job_id: str) -> asyncio.Task[None]:
    """The Job event handler is reporting the finished Job: CodePipeline took the result, the
    answer has not come back yet (so the Job is not yet marked reported)."""
    world.cp.answer_gate = asyncio.Event()
    finished = world.job(job_id)
    assert finished is not None

    async def handled_and_reported() -> None:
        await workerloop.job_changed(life.runtime, "MODIFIED", finished)
        await asyncio.gather(*life.runtime.background)  # the report runs beside the handler

    task = asyncio.create_task(handled_and_reported())
    await world.cp.answer_held.wait()
    return task


async def test_a_job_succeeded_while_being_reported_is_not_cancelled(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    stale = world.summary(job_id)  # the index has not seen the Job finish yet
    world.succeed(job_id)
    report = await report_in_flight(world, life, job_id)
    assert world.cp.jobs[job_id].status == "Succeeded"
    await life.supervisor.supervise([stale], world.pods_of)
    assert world.cp.calls[-1].operation == "AcknowledgeJob"  # the probe heard "Succeeded"
    assert world.cp.answer_gate is not None
    world.cp.answer_gate.set()
    await report
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"
    assert "JobCancelled" not in world.kube.event_reasons()
    assert len(world.cp.puts) == 1


async def test_the_supervisor_does_not_report_a_job_the_event_path_is_reporting(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    report = await report_in_flight(world, life, job_id)
    await life.supervise()  # sees the finished Job too
    assert world.cp.answer_gate is not None
    world.cp.answer_gate.set()
    await report
    await life.supervise()
    assert len(world.cp.puts) == 1


async def test_a_job_failed_as_never_started_is_not_also_cancelled_by_a_stale_probe(
    world: World,
) -> None:
    """The report is in flight for a Job that did not finish in Kubernetes (its pod never
    started): CodePipeline already says Failed, the Job is still running and unfinished, so
    only the reporter's guard tells the probe that this end is ours, not a stop."""
    life = world.life()
    job_id = await world.dispatched(life)
    stale = world.summary(job_id)  # as another view of the index (e.g. the drain) has it
    world.cannot_pull(job_id, minutes_ago=60)
    world.cp.answer_gate = asyncio.Event()
    report = asyncio.create_task(life.supervise())
    await world.cp.answer_held.wait()
    other_view = workerloop.in_flight_supervisor(life.runtime, NAMESPACE, WORKER, "uid")
    await other_view.supervise([stale], lambda _name: [])
    world.cp.answer_gate.set()
    await report
    assert world.cp.accepted[0].failure_type == "SystemUnavailable"
    assert "JobCancelled" not in world.kube.event_reasons()
