"""Acceptance: each way a job can go wrong ends with a clear result in CodePipeline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Cluster, Stack, wait_for, worker_manifest


def action_detail(cp_client: Any, scenario: Any, execution_id: str, action: str) -> dict[str, Any]:
    details = cp_client.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return next(d for d in details if d["actionName"] == action)


def error_of(cp_client: Any, scenario: Any, execution_id: str) -> dict[str, str]:
    detail = action_detail(cp_client, scenario, execution_id, "Build")
    assert detail["status"] == "Failed"
    return dict(detail["output"]["executionResult"]["errorDetails"])


def run_one(
    cp_scenario: Any,
    cp_client: Any,
    cluster: Cluster,
    operator_thread: Any,
    annotations: dict[str, str],
    **manifest_options: Any,
) -> tuple[Any, str]:
    scenario = cp_scenario()
    operator_thread()
    cluster.apply(worker_manifest(scenario, annotations=annotations, **manifest_options))
    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id, timeout=60) == "Failed"
    return scenario, execution_id


def test_failing_container_reports_job_failed(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    scenario, execution_id = run_one(
        cp_scenario,
        cp_client,
        cluster,
        operator_thread,
        {
            "sandbox.cpworker.io/duration": "200ms",
            "sandbox.cpworker.io/exit-code": "3",
            "sandbox.cpworker.io/termination-message": "error: 2 tests failed in suite core",
        },
    )
    error = error_of(cp_client, scenario, execution_id)
    assert error["code"] == "JobFailed"
    assert "exit code 3" in error["message"]
    assert "2 tests failed in suite core" in error["message"]
    status = wait_for(
        lambda: ((cluster.worker() or {}).get("status") or {}).get("failed") == 1 or None,
        what="failed == 1",
    )
    assert status
    assert "JobFailed" in cluster.reasons_once("JobFailed")


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "Unschedulable"])
def test_pod_that_never_starts_reports_system_unavailable(
    reason: str, cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    scenario, execution_id = run_one(
        cp_scenario,
        cp_client,
        cluster,
        operator_thread,
        {"sandbox.cpworker.io/fail-reason": reason},
    )
    error = error_of(cp_client, scenario, execution_id)
    assert error["code"] == "SystemUnavailable"
    assert reason in error["message"]
    # The Job that could never start is removed rather than left pending.
    wait_for(lambda: not cluster.jobs(), what="the stuck Job deleted")


def test_deadline_exceeded_reports_job_failed(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    scenario = cp_scenario()
    operator_thread()
    manifest = worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "30s"})
    manifest["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] = 1
    cluster.apply(manifest)
    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id, timeout=60) == "Failed"
    error = error_of(cp_client, scenario, execution_id)
    assert error["code"] == "JobFailed"
    assert "DeadlineExceeded" in error["message"]


def test_pipeline_stopped_mid_job_deletes_the_job(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    scenario = cp_scenario()
    operator_thread()
    cluster.apply(worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "60s"}))
    execution_id = scenario.start(cp_client)

    def running_job() -> Any:
        jobs = [
            j
            for j in cluster.jobs()
            if j["metadata"]["annotations"].get("cpworker.io/phase") == "running"
        ]
        return jobs[0] if jobs else None

    job = wait_for(running_job, what="the Job running")
    cp_client.stop_pipeline_execution(
        pipelineName=scenario.pipeline_name,
        pipelineExecutionId=execution_id,
        abandon=True,
        reason="stopped by the test",
    )
    wait_for(
        lambda: job["metadata"]["name"] not in {j["metadata"]["name"] for j in cluster.jobs()},
        what="the Kubernetes Job deleted after the stop",
    )
    wait_for(
        lambda: "JobCancelled" in [e["reason"] for e in cluster.events()],
        what="the JobCancelled event",
    )
    wait_for(lambda: not cluster.secrets(), what="its Secret deleted")


def test_paused_worker_does_not_poll_until_resumed(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any, codepipeline: Any
) -> None:
    scenario = cp_scenario()
    operator_thread()
    manifest = worker_manifest(
        scenario, annotations={"sandbox.cpworker.io/duration": "100ms"}, spec={"paused": True}
    )
    cluster.apply(manifest)
    condition = wait_for(
        lambda: (cluster.condition() or {}).get("reason") == "Paused" and cluster.condition(),
        what="the Paused condition",
    )
    assert condition["status"] == "False"
    execution_id = scenario.start(cp_client)
    # Longer than the poll interval (1 s): an unpaused worker would have polled by now.
    time.sleep(2.5)
    assert scenario.status(cp_client, execution_id) == "InProgress"
    assert not cluster.jobs()
    assert not [r for r in codepipeline.requests() if r.operation == "PollForJobs"]

    manifest["spec"]["paused"] = False
    cluster.apply(manifest)
    assert scenario.wait(cp_client, execution_id, timeout=60) == "Succeeded"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda spec: spec["jobTemplate"]["spec"]["template"]["spec"].update(
                restartPolicy="Always"
            ),
            "restartPolicy",
        ),
        (
            lambda spec: spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(
                env=[{"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/tmp/x"}]
            ),
            "AWS_SHARED_CREDENTIALS_FILE",
        ),
    ],
    ids=["restart-policy", "reserved-env"],
)
def test_invalid_spec_sets_condition_and_never_polls(
    stack: Stack, change: Any, expected: str
) -> None:
    scenario = stack.cp_scenario()
    cluster = stack.cluster
    stack.start_operator()
    manifest = worker_manifest(scenario)
    change(manifest["spec"])
    cluster.apply(manifest)
    condition = wait_for(
        lambda: (cluster.condition() or {}).get("reason") == "InvalidSpec" and cluster.condition(),
        what="the InvalidSpec condition",
    )
    assert condition["status"] == "False"
    assert expected in condition["message"]
    # The event comes from the create handler, the condition from the worker's loop.
    wait_for(
        lambda: "InvalidSpec" in [e["reason"] for e in cluster.events()],
        what="the InvalidSpec event",
    )
    time.sleep(2.5)  # longer than the poll interval: a valid worker would have polled
    assert stack.calls("PollForJobs") == 0


def test_owner_other_than_custom_is_rejected_by_the_api(cp_scenario: Any, cluster: Cluster) -> None:
    scenario = cp_scenario()
    manifest = worker_manifest(scenario)
    manifest["spec"]["actionTypeId"]["owner"] = "AWS"
    with pytest.raises(AssertionError, match="Custom"):
        cluster.apply(manifest)


def test_malformed_job_data_is_failed_as_configuration_error(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    execution_id = scenario.start(stack.cp_client)
    wait_for(
        lambda: scenario.status(stack.cp_client, execution_id) == "InProgress",
        what="the execution running",
    )

    def corrupt(answer: dict[str, Any]) -> None:
        for job in answer.get("jobs", []):
            job["data"]["inputArtifacts"][0]["name"] = "not a valid artifact name!"

    stack.codepipeline.tamper("PollForJobs", corrupt)
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario))
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "ConfigurationError"
    assert "malformed CodePipeline job data" in error["message"]
    assert "inputArtifacts" in error["message"]
    assert not stack.cluster.jobs()  # nothing ran
    wait_for(
        lambda: "JobRejected" in [e["reason"] for e in stack.cluster.events()],
        what="the JobRejected event",
    )
    # The corrupted answer broke the service model on purpose.
    stack.codepipeline.clear_violations()


def test_job_the_api_server_refuses_is_failed_as_configuration_error(stack: Stack) -> None:
    # Schema-valid, so the operator's own template check passes; the API server refuses it
    # (a volumeMount naming no volume). The job must fail with the reason, not time out.
    scenario = stack.cp_scenario()
    container = {
        "name": "build",
        "image": "example.com/builder:1",
        "volumeMounts": [{"name": "no-such-volume", "mountPath": "/cache"}],
    }
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario, container=container))
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "ConfigurationError"
    assert "the Kubernetes API refused the Job" in error["message"]
    assert "no-such-volume" in error["message"]
    assert not stack.cluster.jobs()
    wait_for(
        lambda: "JobRejected" in [e["reason"] for e in stack.cluster.events()],
        what="the JobRejected event",
    )


def test_throttling_shows_in_the_worker_condition(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.codepipeline.faults.set("PollForJobs", throttle_probability=1.0)
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario))
    condition = wait_for(
        lambda: (
            (stack.cluster.condition() or {}).get("reason") == "Throttled"
            and stack.cluster.condition()
        ),
        what="the Throttled condition",
    )
    assert condition["status"] == "False"
    last_error = (stack.cluster.worker() or {})["status"]["lastError"]
    assert last_error["reason"] == "Throttled"
    stack.codepipeline.faults.clear()
    wait_for(
        lambda: (stack.cluster.condition() or {}).get("status") == "True",
        timeout=60,
        what="Ready again once throttling stops",
    )


def test_unknown_action_type_says_what_to_do(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator()
    manifest = worker_manifest(scenario)
    manifest["spec"]["actionTypeId"]["provider"] = "NoSuchProvider"
    stack.cluster.apply(manifest)
    condition = wait_for(
        lambda: (
            (stack.cluster.condition() or {}).get("reason") == "ActionTypeNotFound"
            and stack.cluster.condition()
        ),
        what="the ActionTypeNotFound condition",
    )
    assert "create it" in condition["message"]


def test_missing_service_account_reports_system_unavailable(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator()
    manifest = worker_manifest(scenario)
    pod_spec = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod_spec["serviceAccountName"] = "no-such-account"
    stack.cluster.apply(manifest)
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "SystemUnavailable"
    assert "never started" in error["message"]
    # The Job controller's FailedCreate event says why (before: only "NoPodCreated").
    assert 'serviceaccount "no-such-account" not found' in error["message"]
    assert "create the ServiceAccount" in error["message"]


def test_job_deleted_by_someone_else_fails_the_action(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "60s"})
    )
    execution_id = scenario.start(stack.cp_client)

    def running() -> Any:
        return [
            j
            for j in stack.cluster.jobs()
            if j["metadata"]["annotations"].get("cpworker.io/phase") == "running"
        ]

    job = wait_for(running, what="the Job running")[0]
    stack.cluster.request(
        "DELETE", f"/apis/batch/v1/namespaces/default/jobs/{job['metadata']['name']}"
    )
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "JobFailed"
    assert "was deleted before it finished" in error["message"]


JOB_OPERATIONS = (
    "PollForJobs",
    "AcknowledgeJob",
    "GetJobDetails",
    "PutJobSuccessResult",
    "PutJobFailureResult",
    "ListActionTypes",
)


def test_pipeline_succeeds_despite_injected_codepipeline_faults(stack: Stack) -> None:
    scenario = stack.cp_scenario(actions=("Build", "Test"))
    # 20 % of the job API's answers are 5xx and 10 % are throttled (the test's own calls,
    # StartPipelineExecution and friends, are left alone), and the first call of each job
    # operation fails for sure: a run of two jobs makes few calls, and chance alone left some
    # runs without any fault.
    for operation in JOB_OPERATIONS:
        stack.codepipeline.faults.set(
            operation, error_probability=0.2, throttle_probability=0.1, error_next=1
        )
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "200ms"})
    )
    execution_id = scenario.start(stack.cp_client)
    status = scenario.wait(stack.cp_client, execution_id, timeout=90)
    assert status == "Succeeded", [
        (detail["actionName"], detail["status"], detail.get("output", {}).get("executionResult"))
        for detail in stack.cp_client.list_action_executions(
            pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
        )["actionExecutionDetails"]
    ]
    faulted = [r for r in stack.codepipeline.requests() if r.outcome == "fault"]
    assert faulted  # the faults did happen
    assert len(stack.cluster.jobs()) == 2
    # A finished job is never mistaken for a cancelled one (CodePipeline says "Succeeded").
    assert "JobCancelled" not in [e["reason"] for e in stack.cluster.events()]
