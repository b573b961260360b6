"""Acceptance: worker deletion, long jobs (continuation, credential refresh), two operators."""

from __future__ import annotations

import base64
from typing import Any

from tests.e2e.conftest import Stack, wait_for, worker_manifest


def running_jobs(stack: Stack) -> list[dict[str, Any]]:
    return [
        j
        for j in stack.cluster.jobs()
        if j["metadata"]["annotations"].get("cpworker.io/phase") == "running"
    ]


def build_detail(stack: Stack, scenario: Any, execution_id: str) -> dict[str, Any]:
    details = stack.cp_client.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return dict(next(d for d in details if d["actionName"] == "Build"))


def test_deleting_a_worker_drains_in_flight_jobs(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "3s"})
    )
    execution_id = scenario.start(stack.cp_client)
    wait_for(lambda: running_jobs(stack), what="the Job running")

    stack.cluster.delete_worker()
    # The finalizer holds the worker while its job is in flight ...
    worker = stack.cluster.worker()
    assert worker is not None
    assert worker["metadata"].get("deletionTimestamp")
    condition = wait_for(
        lambda: (
            (stack.cluster.condition() or {}).get("reason") == "Deleting"
            and stack.cluster.condition()
        ),
        what="the Deleting condition",
    )
    assert "draining: 1 job(s)" in condition["message"]
    # ... the job finishes and is reported, then the worker goes.
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"
    wait_for(lambda: stack.cluster.worker() is None, what="the worker deleted")


def test_deleting_a_worker_with_cancel_policy_fails_its_jobs(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(
            scenario,
            annotations={"sandbox.cpworker.io/duration": "60s"},
            spec={"deletionPolicy": "Cancel"},
        )
    )
    execution_id = scenario.start(stack.cp_client)
    wait_for(lambda: running_jobs(stack), what="the Job running")

    stack.cluster.delete_worker()
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    error = build_detail(stack, scenario, execution_id)["output"]["executionResult"]
    assert "deletionPolicy Cancel" in error["errorDetails"]["message"]
    wait_for(lambda: stack.cluster.worker() is None, what="the worker deleted")
    wait_for(lambda: not running_jobs(stack), what="the Job deleted")


def test_long_job_is_handed_over_with_continuation_tokens(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.codepipeline.config.continuation_delay = 0.2
    stack.start_operator(continuation_after_seconds=1.0)
    stack.cluster.apply(
        worker_manifest(
            scenario,
            annotations={
                "sandbox.cpworker.io/duration": "4s",
                "sandbox.cpworker.io/termination-message": '{"summary": "long build done"}',
            },
        )
    )
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"

    # One Kubernetes Job carried the whole action across several CodePipeline jobs.
    jobs = stack.cluster.jobs()
    assert len(jobs) == 1
    annotations = jobs[0]["metadata"]["annotations"]
    assert annotations.get("cpworker.io/continuation-of")
    assert annotations["cpworker.io/job-id"] != annotations["cpworker.io/continuation-of"]
    reasons = stack.cluster.reasons_once("JobHandedOver", "JobContinued")
    assert "JobHandedOver" in reasons
    assert "JobContinued" in reasons
    detail = build_detail(stack, scenario, execution_id)
    assert detail["output"]["executionResult"]["externalExecutionSummary"] == "long build done"


def test_continuation_naming_a_vanished_job_fails_clearly(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.codepipeline.config.continuation_delay = 3.0
    stack.start_operator(continuation_after_seconds=0.5)
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "60s"})
    )
    execution_id = scenario.start(stack.cp_client)
    wait_for(lambda: stack.calls("PutJobSuccessResult") >= 1, what="the hand-over")
    # The Job disappears while CodePipeline prepares the continuation job.
    for job in stack.cluster.jobs():
        stack.cluster.request(
            "DELETE", f"/apis/batch/v1/namespaces/default/jobs/{job['metadata']['name']}"
        )
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    message = build_detail(stack, scenario, execution_id)["output"]["executionResult"][
        "errorDetails"
    ]["message"]
    assert "no longer exists" in message


def credentials_file(stack: Stack) -> str:
    secrets = stack.cluster.secrets()
    if not secrets:
        return ""
    return base64.b64decode(secrets[0]["data"]["credentials"]).decode()


def test_credentials_are_refreshed_while_the_job_runs(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.codepipeline.config.credential_lifetime = 2.0
    stack.start_operator(credentials_refresh_seconds=1.0)
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "4s"})
    )
    execution_id = scenario.start(stack.cp_client)
    wait_for(lambda: running_jobs(stack), what="the Job running")
    first = wait_for(lambda: credentials_file(stack), what="the credentials file")
    assert "aws_secret_access_key" in first
    refreshed = wait_for(
        lambda: (current := credentials_file(stack)) and current != first and current,
        what="a refreshed credentials file",
    )
    assert "aws_session_token" in refreshed
    assert stack.calls("GetJobDetails") >= 1
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


def test_two_operators_never_dispatch_a_job_twice(stack: Stack) -> None:
    scenario = stack.cp_scenario(actions=("Build", "Test", "Package"))
    # Every poll re-delivers unacknowledged jobs with a fresh nonce: the operators race.
    stack.codepipeline.config.redelivery_window = 0.0
    stack.start_operator()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "300ms"})
    )
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=90) == "Succeeded"

    jobs = stack.cluster.jobs()
    job_ids = [j["metadata"]["annotations"]["cpworker.io/job-id"] for j in jobs]
    assert len(job_ids) == 3
    assert len(set(job_ids)) == 3
    # Each Kubernetes Job ran exactly one pod.
    pods_per_job: dict[str, int] = {}
    for pod in stack.cluster.pods():
        owner = pod["metadata"]["ownerReferences"][0]["name"]
        pods_per_job[owner] = pods_per_job.get(owner, 0) + 1
    assert sorted(pods_per_job.values()) == [1, 1, 1]
    # Two standalone operators side by side (never the chart's layout: one replica, replaced
    # with Recreate; replicas need peering, which takes a report lease) may both send a
    # result. CodePipeline keeps the first one of each job and refuses the other.
    puts = [r for r in stack.codepipeline.requests() if r.operation == "PutJobSuccessResult"]
    assert sorted(r.job_id for r in puts if r.outcome == "ok") == sorted(job_ids)
    assert {r.error_type for r in puts if r.outcome != "ok"} <= {"InvalidJobStateException"}
    wait_for(
        lambda: ((stack.cluster.worker() or {}).get("status") or {}).get("succeeded") == 3,
        what="succeeded == 3",
    )


def clone_pipelines(stack: Stack, scenario: Any, count: int) -> list[str]:
    """More pipelines using the scenario's custom action type (so that jobs run side by side)."""
    declaration = stack.cp_client.get_pipeline(name=scenario.pipeline_name)["pipeline"]
    names = []
    for index in range(count):
        clone = {**declaration, "name": f"{scenario.pipeline_name}-{index}"}
        clone.pop("version", None)
        stack.cp_client.create_pipeline(pipeline=clone)
        names.append(clone["name"])
    return names


def test_max_in_flight_bounds_running_jobs_and_batches_dispatch(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    pipelines = [scenario.pipeline_name, *clone_pipelines(stack, scenario, 4)]
    executions = {
        name: stack.cp_client.start_pipeline_execution(name=name)["pipelineExecutionId"]
        for name in pipelines
    }
    stack.start_operator()
    manifest = worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "1s"})
    manifest["spec"]["maxInFlight"] = 2
    stack.cluster.apply(manifest)

    most = 0

    def all_done() -> bool:
        nonlocal most
        live = [
            j
            for j in stack.cluster.jobs()
            if j["metadata"]["annotations"].get("cpworker.io/phase") in {"claiming", "running"}
        ]
        most = max(most, len(live))
        statuses = [
            stack.cp_client.get_pipeline_execution(pipelineName=name, pipelineExecutionId=eid)[
                "pipelineExecution"
            ]["status"]
            for name, eid in executions.items()
        ]
        return all(status == "Succeeded" for status in statuses)

    wait_for(all_done, timeout=90, interval=0.05, what="all five executions Succeeded")
    assert most <= 2
    assert len(stack.cluster.jobs()) == 5


def test_a_worker_deleted_before_its_finalizer_landed_still_drains(stack: Stack, kube: Any) -> None:
    """kopf adds cpworker.io/finalizer with its first patch of the worker; when that patch is
    refused once (kopf retries after a second), no job may be dispatched meanwhile, or a
    delete in that window removes the worker at once and garbage-collects its running Jobs."""
    scenario = stack.cp_scenario()
    kube.faults.set("patch:customactionworkers", status=500, next=1)
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "3s"})
    )
    execution_id = scenario.start(stack.cp_client)
    wait_for(lambda: running_jobs(stack), timeout=60, what="the Job running")
    worker = stack.cluster.worker()
    assert worker is not None
    assert "cpworker.io/finalizer" in (worker["metadata"].get("finalizers") or [])
    stack.cluster.delete_worker()
    # Drained: the job finishes and is reported, not lost with a garbage-collected Job.
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


def test_a_worker_whose_finalizer_patch_conflicted_still_starts(stack: Stack, kube: Any) -> None:
    """Found by the faults e2e: kopf's finalizer patch names the resourceVersion it read, so
    it conflicts with any status write in between; kopf then waits for the worker's next watch
    event to retry, and an idle worker may never have one. The daemon, which waits for the
    finalizer before it dispatches anything, stayed at "first poll soon" for good."""
    scenario = stack.cp_scenario()
    kube.faults.set("patch:customactionworkers", status=409, next=1)
    # No status write lands either: nothing else makes a watch event for kopf.
    kube.faults.set("patch:customactionworkers/status", status=503, probability=1.0)
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "1s"})
    )
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"
    assert kube.faults.counts().get("409") == 1, kube.faults.counts()
    worker = stack.cluster.worker()
    assert worker is not None
    assert (worker["metadata"].get("finalizers") or []).count("cpworker.io/finalizer") == 1
