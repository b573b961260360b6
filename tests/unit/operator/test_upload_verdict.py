"""A Complete Job with output artifacts succeeds only once the push sidecar exited 0.

Each verdict of `cpworker-push` (results.upload_outcome, called by outcome_from), as the
kubelet leaves it in `status.initContainerStatuses`, and what CodePipeline is told.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cpworker import names
from cpworker.results import OutcomeKind, outcome_from, result_for
from tests.unit.operator.test_results import EXT_ID, JOB_NAME, T0, assert_botocore_accepts

PUSH, PULL = names.PUSH_CONTAINER, names.PULL_CONTAINER
USER_RESULT = json.dumps({"summary": "built 3 targets", "outputVariables": {"TAG": "v1"}})


def report(failure_type: str, message: str) -> str:
    return json.dumps({"failure": {"type": failure_type, "message": message}})


def job(*conditions: str, pushes: bool = True) -> dict[str, Any]:
    init = [{"name": PUSH, "restartPolicy": "Always"}, {"name": PULL}] if pushes else []
    return {
        "metadata": {"name": JOB_NAME, "namespace": "ci", "creationTimestamp": T0},
        "spec": {"template": {"spec": {"initContainers": init, "containers": [{"name": "b"}]}}},
        "status": {
            "conditions": [
                {"type": kind, "status": "True", "reason": "", "message": ""} for kind in conditions
            ]
        },
    }


def state(exit_code: int, message: str | None = None, reason: str | None = None) -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
    }
    if message is not None:
        terminated["message"] = message
    return {"terminated": terminated}


def pod(
    phase: str,
    push: dict[str, Any] | None,
    build: dict[str, Any],
    *,
    push_last: dict[str, Any] | None = None,
    grace: int = 900,
) -> dict[str, Any]:
    init_statuses = [{"name": PULL, "state": state(0)}]
    if push is not None:
        status: dict[str, Any] = {"name": PUSH, "state": push}
        if push_last is not None:
            status["lastState"] = push_last
        init_statuses.insert(0, status)
    return {
        "metadata": {"name": f"{JOB_NAME}-x", "creationTimestamp": T0},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "initContainers": [{"name": PUSH, "restartPolicy": "Always"}, {"name": PULL}],
            "containers": [{"name": "build"}],
        },
        "status": {
            "phase": phase,
            "initContainerStatuses": init_statuses,
            "containerStatuses": [{"name": "build", "state": build}],
        },
    }


def told(outcome: Any) -> dict[str, Any]:
    call = result_for(outcome, job_id="j-1", namespace="ci", job_name=JOB_NAME)
    assert_botocore_accepts(call)
    return {"operation": call.operation, **dict(call.params)}


def test_push_exit_0_is_the_success_with_the_users_report() -> None:
    outcome = outcome_from(
        job("SuccessCriteriaMet", "Complete"), [pod("Succeeded", state(0), state(0, USER_RESULT))]
    )
    assert outcome.kind is OutcomeKind.SUCCEEDED
    call = told(outcome)
    assert call["operation"] == "PutJobSuccessResult"
    assert call["executionDetails"]["summary"] == "built 3 targets"
    assert call["outputVariables"] == {"TAG": "v1"}


@pytest.mark.parametrize(
    ("failure_type", "message"),
    [
        ("PermissionError", "S3 denied it: AccessDenied (Access Denied)"),
        ("JobFailed", "Output artifact 'Out': /workspace/out/Out is a link"),
        ("SystemUnavailable", "S3 kept answering SlowDown after 8 attempts"),
        ("ConfigurationError", "invalid artifact helper settings: max_files"),
    ],
)
def test_push_failed_is_the_failure_its_report_names(failure_type: str, message: str) -> None:
    outcome = outcome_from(
        job("Complete"),
        [pod("Succeeded", state(1, report(failure_type, message)), state(0, USER_RESULT))],
    )
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.container == PUSH
    call = told(outcome)
    assert call["operation"] == "PutJobFailureResult"
    details = call["failureDetails"]
    assert details["type"] == failure_type
    assert message in details["message"]
    assert "container cpworker-push, exit code 1" in details["message"]
    assert (
        "The job's containers succeeded, but uploading its output artifacts failed"
        in (details["message"])
    )
    assert details["externalExecutionId"] == EXT_ID


def test_push_killed_at_the_end_of_the_grace_period() -> None:
    log_tail = '{"message": "packed: artifact=Out files=90000"}'
    outcome = outcome_from(
        job("Complete"), [pod("Succeeded", state(137, log_tail), state(0), grace=600)]
    )
    details = told(outcome)["failureDetails"]
    assert details["type"] == "JobFailed"
    assert "did not finish within terminationGracePeriodSeconds (600 s)" in details["message"]
    assert "CPWORKER_ARTIFACTS_PUSH_GRACE_SECONDS" in details["message"]
    assert "packed: artifact=Out" in details["message"]  # the log tail (FallbackToLogsOnError)


def test_push_out_of_memory_says_so_rather_than_blaming_the_grace_period() -> None:
    outcome = outcome_from(
        job("Complete"), [pod("Succeeded", state(137, reason="OOMKilled"), state(0))]
    )
    message = told(outcome)["failureDetails"]["message"]
    assert "ran out of memory" in message
    assert "CPWORKER_ARTIFACTS_RESOURCES" in message
    assert "terminationGracePeriodSeconds" not in message


@pytest.mark.parametrize(
    "push",
    [{"running": {"startedAt": T0}}, {"waiting": {"reason": "PodInitializing"}}, None],
    ids=["running", "waiting", "no status yet"],
)
def test_complete_but_push_not_terminated_is_not_finished(push: dict[str, Any] | None) -> None:
    outcome = outcome_from(job("Complete"), [pod("Succeeded", push, state(0))])
    assert outcome.kind is OutcomeKind.RUNNING
    assert not outcome.finished
    with pytest.raises(ValueError, match="running"):
        told(outcome)


def test_complete_while_the_pod_view_is_behind_waits() -> None:
    outcome = outcome_from(job("Complete"), [pod("Running", {"running": {}}, state(0))])
    assert outcome.kind is OutcomeKind.RUNNING


def test_a_push_crash_the_kubelet_was_restarting_is_reported() -> None:
    crashed = state(2, report("ConfigurationError", "invalid artifact helper settings"))
    outcome = outcome_from(
        job("Complete"),
        [
            pod(
                "Succeeded",
                {"waiting": {"reason": "CrashLoopBackOff"}},
                state(0),
                push_last=crashed,
            )
        ],
    )
    details = told(outcome)["failureDetails"]
    assert details["type"] == "ConfigurationError"
    assert "exit code 2" in details["message"]


def test_complete_with_the_pod_gone_cannot_confirm_the_upload() -> None:
    outcome = outcome_from(job("Complete"), [])
    details = told(outcome)["failureDetails"]
    assert details["type"] == "JobFailed"
    assert "cannot be confirmed" in details["message"]


def test_without_the_push_sidecar_complete_is_success_as_before() -> None:
    outcome = outcome_from(job("Complete", pushes=False), [])
    assert outcome.kind is OutcomeKind.SUCCEEDED


def test_a_failure_the_user_declared_wins_over_the_upload() -> None:
    declared = report("RevisionOutOfSync", "the tag moved while building")
    outcome = outcome_from(
        job("Complete"),
        [pod("Succeeded", state(1, report("PermissionError", "denied")), state(0, declared))],
    )
    details = told(outcome)["failureDetails"]
    assert details["type"] == "RevisionOutOfSync"
    assert "denied" not in details["message"]


def test_a_failed_user_container_is_never_blamed_on_the_push() -> None:
    # Both failed: the build (exit 2) and then the push; the sidecar is listed first.
    failed = pod(
        "Failed",
        state(1, report("PermissionError", "upload refused")),
        state(2, "make: *** [all] Error 2"),
    )
    outcome = outcome_from(job("FailureTarget", "Failed"), [failed])
    assert outcome.container == "build"
    details = told(outcome)["failureDetails"]
    assert details["type"] == "JobFailed"
    assert "make: *** [all] Error 2" in details["message"]
    assert "upload refused" not in details["message"]


def test_a_failed_pull_is_the_first_failed_container() -> None:
    failed = pod("Failed", state(143), {"waiting": {"reason": "PodInitializing"}})
    failed["status"]["initContainerStatuses"][1]["state"] = state(
        1, report("JobFailed", "entry '../x' has a '..' component")
    )
    outcome = outcome_from(job("Failed"), [failed])
    assert outcome.container == PULL
    details = told(outcome)["failureDetails"]
    assert details["type"] == "JobFailed"
    assert "'..' component" in details["message"]
