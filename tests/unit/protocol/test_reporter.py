"""reporter.Reporter: every way a result leaves the operator, its events and its counters."""

from __future__ import annotations

import asyncio
import time

import pytest

from cpworker import codepipeline, jobrecord, models, names, results, workerloop, workerstatus
from cpworker.kube import KubeError
from tests.unit.operator import samples
from tests.unit.protocol.fakes import WORKER_RESOURCE, throttled
from tests.unit.protocol.world import NAMESPACE, WORKER, Crash, World, crash_at, job_name


def status(world: World) -> dict[str, int]:
    """The worker's counters (without the ledger of counted jobs that goes with them)."""
    worker = world.kube.get_object(WORKER_RESOURCE, NAMESPACE, WORKER) or {}
    return {k: v for k, v in (worker.get("status") or {}).items() if k != "countedJobs"}


def last_event(world: World) -> dict[str, str]:
    event = world.kube.events[-1]
    return {
        "reason": event["reason"],
        "type": event["type"],
        "kind": event["involvedObject"]["kind"],
        "name": event["involvedObject"]["name"],
        "uid": event["involvedObject"]["uid"],
    }


# ---- the push sidecar decides a Complete Job ------------------------------------------------


async def test_a_complete_job_whose_upload_failed_is_reported_with_the_helpers_failure(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    report = '{"failure": {"type": "PermissionError", "message": "S3 denied it: AccessDenied"}}'
    world.succeed(job_id, push=(1, report))
    assert await life.reporter.finished(world.summary(job_id))
    [call] = world.cp.accepted
    assert call.operation == "PutJobFailureResult"
    assert call.params["failureDetails"]["type"] == "PermissionError"
    assert "S3 denied it" in call.params["failureDetails"]["message"]
    job = world.job(job_id)
    assert job is not None
    assert job["metadata"]["annotations"][names.ANNOTATION_RESULT] == "failed"
    assert world.kube.event_reasons()[-1] == "JobFailed"


async def test_a_complete_job_is_not_reported_while_its_push_still_runs(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    pod = world.pods_of(job_name(job_id))[0].name
    world.kube.external_patch(
        "pods",
        NAMESPACE,
        pod,
        {
            "status": {
                "phase": "Running",
                "initContainerStatuses": [
                    {"name": names.PUSH_CONTAINER, "state": {"running": {}}},
                    {"name": names.PULL_CONTAINER, "state": {"terminated": {"exitCode": 0}}},
                ],
            }
        },
    )
    assert not await life.reporter.finished(world.summary(job_id))
    await life.supervise()
    assert world.cp.accepted == []
    world.succeed(job_id)  # the upload finished: push exited 0, the pod Succeeded
    await life.supervise()
    [call] = world.cp.accepted
    assert call.operation == "PutJobSuccessResult"


# ---- finished Jobs ---------------------------------------------------------------------------


async def test_a_succeeded_job_is_reported_marked_cleaned_up_announced_and_counted(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id, '{"summary": "built 3 targets", "outputVariables": {"v": "1"}}')
    assert await life.reporter.finished(world.summary(job_id))
    [call] = world.cp.accepted
    assert call.operation == "PutJobSuccessResult"
    assert call.params["executionDetails"]["summary"] == "built 3 targets"
    assert call.params["outputVariables"] == {"v": "1"}
    job = world.job(job_id)
    assert job is not None
    annotations = job["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PHASE] == "reported"
    assert annotations[names.ANNOTATION_RESULT] == "succeeded"
    assert job["spec"]["ttlSecondsAfterFinished"] == world.settings.finished_job_ttl_seconds
    assert world.secret(job_id) is None
    assert last_event(world) == {
        "reason": "JobSucceeded",
        "type": "Normal",
        "kind": names.KIND,
        "name": WORKER,
        "uid": samples.WORKER.uid,
    }
    assert status(world) == {"succeeded": 1}


async def test_a_failed_job_is_reported_as_failure_with_its_exit_and_counted(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.fail(job_id, "make: *** [all] Error 2")
    assert await life.reporter.finished(world.summary(job_id))
    [call] = world.cp.accepted
    details = call.params["failureDetails"]
    assert details["type"] == "JobFailed"
    assert "exit code 2" in details["message"]
    assert "make: *** [all] Error 2" in details["message"]
    assert details["externalExecutionId"] == f"{NAMESPACE}/{job_name(job_id)}"
    assert world.annotations(job_id)[names.ANNOTATION_RESULT] == "failed"
    assert last_event(world)["reason"] == "JobFailed"
    assert last_event(world)["type"] == "Warning"
    assert status(world) == {"failed": 1}


async def test_secret_configuration_echoed_by_a_container_is_not_reported(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.fail(job_id, f"login failed with token {samples.CANARY_CONFIG_VALUE}")
    await life.reporter.finished(world.summary(job_id))
    message = world.cp.accepted[0].params["failureDetails"]["message"]
    assert samples.CANARY_CONFIG_VALUE not in message
    assert "token ***" in message


def secret_reads(world: World) -> int:
    return len([r for r in world.kube.requests if r.resource == "secrets" and r.method == "GET"])


async def test_the_claiming_process_redacts_from_what_it_wrote_without_reading_the_secret(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.fail(job_id, f"login failed with token {samples.CANARY_CONFIG_VALUE}")
    reads = secret_reads(world)
    await life.reporter.finished(world.summary(job_id))
    assert secret_reads(world) == reads
    assert "token ***" in world.cp.accepted[0].params["failureDetails"]["message"]


async def test_after_a_restart_the_secret_configuration_is_read_back_to_redact(
    world: World,
) -> None:
    job_id = await world.dispatched(world.life())
    world.fail(job_id, f"login failed with token {samples.CANARY_CONFIG_VALUE}")
    restarted = world.life()
    reads = secret_reads(world)
    await restarted.reporter.finished(world.summary(job_id))
    assert secret_reads(world) == reads + 1
    message = world.cp.accepted[0].params["failureDetails"]["message"]
    assert samples.CANARY_CONFIG_VALUE not in message
    assert "token ***" in message


async def test_a_job_still_running_is_not_reported(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    assert not await life.reporter.finished(world.summary(job_id))
    assert world.cp.puts == []
    assert not life.reporter.covers(world.summary(job_id))


async def test_a_finished_job_is_judged_by_its_pods_as_they_are_now(world: World) -> None:
    """The pod index may lag behind the Job's end: the reporter lists the pods itself."""
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    listed = len([r for r in world.kube.requests if r.resource == "pods"])
    await life.reporter.finished(world.summary(job_id))
    pods = [r for r in world.kube.requests if r.resource == "pods"][listed:]
    assert [(r.method, r.name) for r in pods] == [("GET", "")]
    assert world.cp.accepted[0].params["executionDetails"]["summary"] == "built 3 targets"


def pod_requests(world: World) -> int:
    return len([r for r in world.kube.requests if r.resource == "pods"])


async def test_pods_the_index_holds_in_their_final_state_are_not_listed_again(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.fail(job_id, "make: *** [all] Error 2")
    before = pod_requests(world)
    assert await life.reporter.finished(world.summary(job_id), world.pods_of(job_name(job_id)))
    assert pod_requests(world) == before
    [call] = world.cp.accepted
    assert "Error 2" in call.params["failureDetails"]["message"]


async def test_an_index_that_still_shows_the_pod_running_is_not_trusted(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    lagging = world.pods_of(job_name(job_id))  # the pod as it ran
    world.succeed(job_id)
    before = pod_requests(world)
    assert await life.reporter.finished(world.summary(job_id), lagging)
    assert pod_requests(world) == before + 1
    assert world.cp.accepted[0].params["executionDetails"]["summary"] == "built 3 targets"


async def test_a_job_that_counted_more_pods_than_the_index_holds_lists_them(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.fail(job_id, "the first try")
    first = world.pods_of(job_name(job_id))
    # A retry the index has not seen yet: the Job counted two failed pods.
    world.kube.external_patch("jobs", NAMESPACE, job_name(job_id), {"status": {"failed": 2}})
    before = pod_requests(world)
    assert await life.reporter.finished(world.summary(job_id), first)
    assert pod_requests(world) == before + 1


@pytest.mark.parametrize(
    ("terminating", "listed"),
    [
        (None, 1),  # the API server does not count pods being deleted: wait for the 2nd step
        (0, 0),  # it does, and none is: the first step settles it
        (1, 1),  # one is still being deleted
    ],
)
async def test_a_job_at_its_first_terminal_step_trusts_the_index_only_with_nothing_terminating(
    world: World, terminating: int | None, listed: int
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.fail(job_id)
    conditions = [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}]
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {"status": {"conditions": conditions, "terminating": terminating}},
    )
    before = pod_requests(world)
    assert await life.reporter.finished(world.summary(job_id), world.pods_of(job_name(job_id)))
    assert pod_requests(world) == before + listed


# ---- already ended, lease lost, errors -------------------------------------------------------


async def test_a_job_codepipeline_already_ended_is_recorded_without_counting_it(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.cp.end(job_id, "TimedOut")
    world.succeed(job_id)
    assert await life.reporter.finished(world.summary(job_id))
    assert world.cp.accepted == []
    assert len(world.cp.puts) == 1
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"
    assert world.secret(job_id) is None
    assert last_event(world)["reason"] == "JobAlreadyEnded"
    assert status(world) == {}


async def test_nothing_is_sent_while_another_reporter_holds_the_lease(peered: World) -> None:
    life = peered.life()
    job_id = await peered.dispatched(life)
    peered.succeed(job_id)
    peered.annotate(job_id, {names.ANNOTATION_REPORTER: f"other {time.time():.0f}"})
    writes = len(peered.kube.writes)
    assert not await life.reporter.finished(peered.summary(job_id))
    assert peered.cp.puts == []
    assert len(peered.kube.writes) == writes
    assert not life.reporter.covers(peered.summary(job_id))  # tried again next round


async def test_nothing_is_sent_when_another_replica_takes_the_lease_first(peered: World) -> None:
    life = peered.life()
    job_id = await peered.dispatched(life)
    peered.succeed(job_id)
    peered.kube.intercept(
        "PATCH",
        "jobs",
        lambda: peered.annotate(job_id, {names.ANNOTATION_REPORTER: f"other {time.time():.0f}"}),
    )
    assert not await life.reporter.finished(peered.summary(job_id))
    assert peered.cp.puts == []


@pytest.mark.parametrize(
    ("fixture", "job_methods"),
    [
        # Without peering nobody else reports: no read of the Job, one write (the record).
        ("world", ["PATCH"]),
        # With peering: the lease is read and taken before the Put, then the record.
        ("peered", ["GET", "PATCH", "PATCH"]),
    ],
)
async def test_a_report_reads_and_writes_the_job_as_its_peering_needs(
    request: pytest.FixtureRequest, fixture: str, job_methods: list[str]
) -> None:
    world: World = request.getfixturevalue(fixture)
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    before = len(world.kube.requests)
    assert await life.reporter.finished(world.summary(job_id))
    job_requests = [r for r in world.kube.requests[before:] if r.resource == "jobs"]
    assert [r.method for r in job_requests] == job_methods
    annotations = (world.job(job_id) or {})["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PHASE] == "reported"
    # The record says who sent the result, lease or not.
    assert annotations[names.ANNOTATION_REPORTER].split()[0] == life.reporter.reporter_id
    assert len(world.cp.accepted) == 1


async def test_two_standalone_operators_reporting_at_once_leave_one_result_counted_once(
    world: World,
) -> None:
    """An overlap the chart never makes (two standalone operators): CodePipeline keeps the
    first result and refuses the second; the ledger counts the job once."""
    first, second = world.life(), world.life()
    job_id = await world.dispatched(first)
    world.succeed(job_id)
    seen_by_both = world.summary(job_id)  # the second one's index has not seen the record yet
    assert await first.reporter.finished(seen_by_both)
    assert await second.reporter.finished(seen_by_both)
    assert len(world.cp.accepted) == 1
    assert len(world.cp.puts) == 2
    assert status(world) == {"succeeded": 1}
    assert world.kube.event_reasons()[-2:] == ["JobSucceeded", "JobSucceeded"]


async def test_a_throttled_report_is_retried_by_the_same_reporter(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    world.cp.fail_next_put(throttled("PutJobSuccessResult"))
    with pytest.raises(codepipeline.ThrottledError):
        await life.reporter.finished(world.summary(job_id))
    assert jobrecord.phase_of(world.job(job_id) or {}) == "running"  # not marked reported
    assert world.secret(job_id) is not None
    await life.supervise()  # the lease is still ours: the retry goes through
    assert len(world.cp.accepted) == 1
    assert status(world) == {"succeeded": 1}


async def test_an_event_failure_does_not_undo_the_report(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)

    def unavailable() -> None:
        raise KubeError("POST", "/api/v1/namespaces/ci/events", 503, "", "try later")

    world.kube.intercept("POST", "events", unavailable)
    assert await life.reporter.finished(world.summary(job_id))
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"
    assert status(world) == {"succeeded": 1}


async def test_a_counter_that_cannot_be_written_is_counted_once_by_the_retried_report(
    world: World,
) -> None:
    """Before: the result was marked reported and the count lost (an undercount)."""
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)

    def unavailable() -> None:
        raise KubeError("GET", "/apis/cpworker.io/...", 503, "", "try later")

    world.kube.intercept("GET", WORKER_RESOURCE, unavailable)
    with pytest.raises(KubeError):
        await life.reporter.finished(world.summary(job_id))
    assert jobrecord.phase_of(world.job(job_id) or {}) == "running"  # retried, not lost
    await life.supervise()  # the repeat: "already ended", CodePipeline holds our success
    assert len(world.cp.puts) == 2
    assert len(world.cp.accepted) == 1
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"
    assert status(world) == {"succeeded": 1}
    assert world.kube.event_reasons()[-1] == "JobSucceeded"


async def test_counting_the_same_job_again_changes_nothing(world: World) -> None:
    for _ in range(3):
        await workerstatus.count_job(world.kube, NAMESPACE, WORKER, "succeeded", samples.JOB_ID)
    assert status(world) == {"succeeded": 1}
    worker = world.kube.get_object(WORKER_RESOURCE, NAMESPACE, WORKER) or {}
    assert worker["status"]["countedJobs"] == [workerstatus.counted_key(samples.JOB_ID)]


def test_the_ledger_of_counted_jobs_is_bounded_and_keeps_the_newest() -> None:
    status: dict[str, object] = {}
    for n in range(models.COUNTED_JOBS_MAX + 5):
        patch = workerstatus.count_patch(status, {f"job-{n}": "failed"})
        assert patch is not None
        status |= patch
    ledger = status["countedJobs"]
    assert isinstance(ledger, list)
    assert len(ledger) == models.COUNTED_JOBS_MAX
    assert ledger[-1] == workerstatus.counted_key(f"job-{models.COUNTED_JOBS_MAX + 4}")
    assert status["failed"] == models.COUNTED_JOBS_MAX + 5
    # what the CRD allows (the same model the CRD is generated from)
    models.CustomActionWorkerStatus.model_validate(status)


async def test_a_job_that_ended_without_our_result_is_not_counted(world: World) -> None:
    """An "already ended" alone counts nothing: the job timed out, or was failed by someone else
    while we were about to report success."""
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    world.cp.end(job_id, "TimedOut")
    assert await life.reporter.finished(world.summary(job_id))
    assert status(world) == {}
    assert world.kube.event_reasons()[-1] == "JobAlreadyEnded"
    other = await world.dispatched(life)
    world.succeed(other)
    world.cp.end(other, "Failed")
    assert await life.reporter.finished(world.summary(other))
    assert status(world) == {}


async def test_a_counter_increment_lost_to_another_replica_is_retried(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    world.kube.intercept(
        "PATCH",
        WORKER_RESOURCE,
        lambda: world.kube.external_patch(
            WORKER_RESOURCE, NAMESPACE, WORKER, {"status": {"succeeded": 5}}
        ),
    )
    await life.reporter.finished(world.summary(job_id))
    assert status(world) == {"succeeded": 6}


async def test_a_report_for_another_job_id_is_refused(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    call = results.failure_result(job_id=samples.JOB_ID, failure_type="JobFailed", message="x")
    with pytest.raises(ValueError, match="another job"):
        await life.reporter._report(world.summary(job_id), call)
    assert world.cp.puts == []


# ---- one report per job, whoever notices first -----------------------------------------------


async def test_the_event_path_and_the_supervisor_never_send_twice(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    stale = world.summary(job_id)
    world.succeed(job_id)
    finished_body = world.job(job_id)
    assert finished_body is not None
    await workerloop.job_changed(life.runtime, "MODIFIED", finished_body)
    await life.supervise()
    await life.supervisor.supervise([world.summary(job_id), stale], world.pods_of)
    await workerloop.job_changed(life.runtime, "MODIFIED", finished_body)  # a late duplicate
    assert len(world.cp.puts) == 1


async def test_concurrent_reports_of_one_job_send_once(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    summary = world.summary(job_id)
    outcomes = await asyncio.gather(*(life.reporter.finished(summary) for _ in range(3)))
    assert sorted(outcomes) == [False, False, True]
    assert len(world.cp.puts) == 1


async def test_a_new_job_of_the_same_name_is_reported_after_the_old_one_is_forgotten(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    summary = world.summary(job_id)
    await life.reporter.finished(summary)
    assert life.reporter.covers(summary)
    life.reporter.forget(summary.name)
    assert not life.reporter.covers(summary)


# ---- vanished, never started, cancelled, rejected --------------------------------------------


async def test_a_running_job_deleted_by_someone_else_fails_its_job(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    last_seen = world.job(job_id)
    assert last_seen is not None
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    await workerloop.job_changed(life.runtime, "DELETED", last_seen)
    [call] = world.cp.accepted
    assert call.failure_type == "JobFailed"
    assert "was deleted before it finished" in call.params["failureDetails"]["message"]
    assert world.secret(job_id) is None
    assert last_event(world)["reason"] == "JobFailed"
    assert status(world) == {"failed": 1}


async def test_a_finished_job_deleted_before_it_was_reported_reports_its_outcome(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    last_seen = world.job(job_id)
    assert last_seen is not None
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    await workerloop.job_changed(life.runtime, "DELETED", last_seen)
    [call] = world.cp.accepted
    assert call.succeeded


async def test_a_job_deleted_by_the_operator_itself_is_not_reported(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    life.probe_due()  # the claim's acknowledgement was the last probe
    world.cp.end(job_id, "Failed")
    last_seen: list[dict[str, object]] = []  # what the watch's DELETED event carries
    world.kube.intercept(
        "DELETE", "jobs", lambda: last_seen.append(world.job(job_id) or {}), name=job_name(job_id)
    )
    await life.supervise()  # cancels and deletes it
    assert world.job(job_id) is None
    await workerloop.job_changed(life.runtime, "DELETED", last_seen[0])
    assert world.cp.puts == []


async def test_a_job_that_never_started_fails_as_system_unavailable_and_goes(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.cannot_pull(job_id, minutes_ago=10)
    summary = world.summary(job_id)
    outcome = results.outcome_from(summary.body, [p.body for p in world.pods_of(summary.name)])
    assert await life.reporter.never_started(summary, outcome)
    [call] = world.cp.accepted
    assert call.failure_type == "SystemUnavailable"
    assert world.job(job_id) is None
    assert world.secret(job_id) is None
    assert status(world) == {"failed": 1}


async def test_cancel_fails_a_running_job_then_deletes_it(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    await life.reporter.cancel(world.summary(job_id), "the worker was deleted (Cancel)")
    [call] = world.cp.accepted
    assert call.failure_type == "JobFailed"
    assert call.params["failureDetails"]["message"] == "the worker was deleted (Cancel)"
    assert world.job(job_id) is None
    assert world.secret(job_id) is None
    marked = [
        w.body["metadata"]["annotations"]
        for w in world.kube.writes_to("jobs")
        if w.method == "PATCH" and w.status == 200
    ]
    assert marked[-1] == {names.ANNOTATION_PHASE: "cancelled"}
    assert status(world) == {}  # no counter, no per-job event: the finalizer posts one


async def test_cancel_of_a_job_still_claiming_deletes_it_without_a_result(world: World) -> None:
    raw = world.polled()
    with pytest.raises(Crash):
        await world.life(hook=crash_at("before-ack")).claim(raw)
    life = world.life()
    await life.reporter.cancel(world.summary(raw["id"]), "deleted with deletionPolicy Cancel")
    assert world.cp.puts == []
    assert world.job(raw["id"]) is None
    assert world.secret(raw["id"]) is None


async def test_reject_sends_a_cleaned_failure_for_a_job_without_a_kubernetes_job(
    world: World,
) -> None:
    raw = world.polled()
    await world.cp.acknowledge_job(raw["id"], raw["nonce"])
    life = world.life()
    message = "bad\x00 template " + "x" * 6000
    assert await life.reporter.reject(world.cp, raw["id"], "ConfigurationError", message)
    details = world.cp.accepted[0].params["failureDetails"]
    assert details["type"] == "ConfigurationError"
    assert "\x00" not in details["message"]
    assert len(details["message"]) == results.FAILURE_MESSAGE_MAX
    assert not await life.reporter.reject(world.cp, raw["id"], "ConfigurationError", "again")


async def test_results_are_sent_with_the_client_for_the_jobs_region_and_role(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.annotate(
        job_id,
        {
            names.ANNOTATION_REGION: "eu-west-1",
            names.ANNOTATION_ROLE_ARN: "arn:aws:iam::111122223333:role/ci",
        },
    )
    world.succeed(job_id)
    await life.reporter.finished(world.summary(job_id))
    assert world.clients.asked[-1] == ("eu-west-1", "arn:aws:iam::111122223333:role/ci")


async def test_a_job_whose_worker_is_gone_is_still_reported(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    world.kube.external_delete(WORKER_RESOURCE, NAMESPACE, WORKER)
    assert await life.reporter.finished(world.summary(job_id))
    assert len(world.cp.accepted) == 1
    assert last_event(world)["reason"] == "JobSucceeded"  # an event needs no live object


async def test_a_job_without_a_worker_annotation_is_reported_without_event_or_counter(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.annotate(job_id, {names.ANNOTATION_WORKER: None})
    world.fail(job_id)
    events = len(world.kube.events)
    assert await life.reporter.finished(world.summary(job_id))
    assert len(world.cp.accepted) == 1
    assert len(world.kube.events) == events
    assert status(world) == {}


async def test_counters_start_at_zero_and_are_never_reset(world: World) -> None:
    await workerstatus.initialise_counters(world.kube, NAMESPACE, WORKER)
    assert status(world) == {"succeeded": 0, "failed": 0, "lostRaces": 0}
    await workerstatus.increment_counter(world.kube, NAMESPACE, WORKER, "lostRaces")
    writes = len(world.kube.writes)
    await workerstatus.initialise_counters(world.kube, NAMESPACE, WORKER)
    assert len(world.kube.writes) == writes  # nothing absent: no write
    assert status(world)["lostRaces"] == 1
