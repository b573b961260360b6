"""Kubernetes outcome -> CodePipeline result: classification, contract, limits, failure types."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from cpworker import names, results
from cpworker.results import (
    ContainerReport,
    InvalidReportError,
    Outcome,
    OutcomeKind,
    never_started_expired,
    outcome_from,
    parse_container_report,
    result_for,
    success_result,
)
from tests.unit.operator.samples import CANARY_CONFIG_VALUE, JOB_ID, NOW

JOB_NAME = f"cpw-{JOB_ID}"
EXT_ID = f"ci/{JOB_NAME}"
T0 = "2026-11-29T09:00:00Z"


def job(*conditions: tuple[str, str], suspend: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": JOB_NAME, "namespace": "ci", "creationTimestamp": T0},
        "spec": {"suspend": suspend},
        "status": {
            "conditions": [
                {"type": type_, "status": "True", "reason": reason, "message": f"{reason} happened"}
                for type_, reason in conditions
            ],
            **status,
        },
    }


def pod(
    phase: str,
    *statuses: dict[str, Any],
    created: str = T0,
    init: tuple[dict[str, Any], ...] = (),
    conditions: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{JOB_NAME}-x", "creationTimestamp": created},
        "spec": {
            "initContainers": [{"name": s["name"]} for s in init],
            "containers": [{"name": s["name"]} for s in statuses],
        },
        "status": {
            "phase": phase,
            "startTime": created,
            "conditions": list(conditions),
            "initContainerStatuses": list(init),
            "containerStatuses": list(statuses),
        },
    }


def terminated(
    name: str, exit_code: int, message: str | None = None, reason: str = "Error"
) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message is not None:
        state["message"] = message
    return {"name": name, "state": {"terminated": state}}


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


_SERVICE = botocore.session.get_session().get_service_model("codepipeline")


def assert_botocore_accepts(call: results.ReportCall) -> None:
    """botocore's own client-side validation (types, required members, ranges, lengths)."""
    shape = _SERVICE.operation_model(call.operation).input_shape
    assert shape is not None
    validate_parameters(dict(call.params), shape)  # raises ParamValidationError


def report(outcome: Outcome, **kwargs: Any) -> results.ReportCall:
    call = result_for(outcome, job_id=JOB_ID, namespace="ci", job_name=JOB_NAME, **kwargs)
    assert_botocore_accepts(call)
    return call


# --- outcome_from ---------------------------------------------------------------------------


def test_suspended_job_is_pending() -> None:
    assert outcome_from(job(suspend=True), []).kind is OutcomeKind.PENDING


def test_running_and_starting_pods_are_running() -> None:
    running = pod("Running", {"name": "build", "state": {"running": {}}})
    assert outcome_from(job(), [running]).kind is OutcomeKind.RUNNING
    creating = pod("Pending", waiting("build", "ContainerCreating"))
    assert outcome_from(job(), [creating]).kind is OutcomeKind.RUNNING


def test_succeeded_job_carries_the_termination_message() -> None:
    done = pod("Succeeded", terminated("build", 0, '{"summary": "built"}', reason="Completed"))
    outcome = outcome_from(job(("Complete", "")), [done])
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.finished
    assert outcome.container == "build"
    assert outcome.termination_message == '{"summary": "built"}'


def test_success_criteria_met_counts_as_success() -> None:
    done = pod("Succeeded", terminated("build", 0, reason="Completed"))
    assert outcome_from(job(("SuccessCriteriaMet", "")), [done]).kind is OutcomeKind.SUCCEEDED


def test_failed_job_names_the_failing_container() -> None:
    failed = pod(
        "Failed",
        terminated("build", 2, "make: *** [all] Error 2"),
        terminated("sidecar", 0, "fine", reason="Completed"),
    )
    outcome = outcome_from(job(("Failed", "BackoffLimitExceeded")), [failed])
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "BackoffLimitExceeded"
    assert outcome.container == "build"
    assert outcome.exit_code == 2
    assert outcome.container_reason == "Error"
    assert outcome.termination_message == "make: *** [all] Error 2"


def test_failed_init_container_is_found_first() -> None:
    failed = pod(
        "Failed",
        waiting("build", "PodInitializing"),
        init=(terminated("fetch", 1, "access denied"),),
    )
    outcome = outcome_from(job(("Failed", "BackoffLimitExceeded")), [failed])
    assert outcome.container == "fetch"
    assert outcome.exit_code == 1


def test_newest_pod_decides_after_retries() -> None:
    old = pod("Failed", terminated("build", 1, "first try"), created="2026-11-29T09:00:00Z")
    new = pod("Failed", terminated("build", 3, "second try"), created="2026-11-29T09:05:00Z")
    outcome = outcome_from(job(("Failed", "BackoffLimitExceeded")), [old, new])
    assert outcome.exit_code == 3
    assert outcome.termination_message == "second try"


def test_deadline_exceeded_without_a_terminated_container() -> None:
    outcome = outcome_from(job(("Failed", "DeadlineExceeded")), [])
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "DeadlineExceeded"
    assert outcome.exit_code is None
    assert outcome.detail == "DeadlineExceeded happened"


@pytest.mark.parametrize(
    "reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"]
)
def test_image_and_config_errors_are_never_started(reason: str) -> None:
    stuck = pod("Pending", waiting("build", reason, "cannot pull ghcr.io/acme/missing"))
    outcome = outcome_from(job(), [stuck])
    assert outcome.kind is OutcomeKind.NEVER_STARTED
    assert outcome.reason == reason
    assert outcome.container == "build"
    assert outcome.since is not None
    assert outcome.since.isoformat() == "2026-11-29T09:00:00+00:00"


def test_unschedulable_pod_is_never_started_since_the_condition() -> None:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: insufficient nvidia.com/gpu",
        "lastTransitionTime": "2026-11-29T09:01:00Z",
    }
    stuck = pod("Pending", conditions=(condition,))
    outcome = outcome_from(job(), [stuck])
    assert outcome.kind is OutcomeKind.NEVER_STARTED
    assert outcome.reason == "Unschedulable"
    assert "insufficient nvidia.com/gpu" in outcome.detail
    assert outcome.since is not None
    assert outcome.since.minute == 1


def test_released_job_without_pods_is_never_started_since_its_start() -> None:
    outcome = outcome_from(job(startTime="2026-11-29T09:30:00Z"), [])
    assert outcome.kind is OutcomeKind.NEVER_STARTED
    assert outcome.reason == results.NO_POD_REASON
    assert outcome.since is not None
    assert outcome.since.minute == 30


def test_just_released_job_is_not_stuck_since_its_creation() -> None:
    # Created suspended at 09:00, held through a long claim (or an operator outage), released
    # at 09:45; the Job controller has not written startTime yet. The grace counts from the
    # release, or a healthy Job would be failed as never started the moment it is released.
    released = job()
    released["metadata"]["annotations"] = {names.ANNOTATION_RELEASED_AT: "2026-11-29T09:45:00Z"}
    outcome = outcome_from(released, [])
    assert outcome.kind is OutcomeKind.NEVER_STARTED
    assert outcome.since == datetime(2026, 11, 29, 9, 45, tzinfo=UTC)
    assert not never_started_expired(outcome, datetime(2026, 11, 29, 9, 45, 1, tzinfo=UTC), 300)


def test_never_started_expiry() -> None:
    outcome = Outcome(kind=OutcomeKind.NEVER_STARTED, reason="ImagePullBackOff", since=NOW)
    assert not never_started_expired(outcome, NOW + timedelta(seconds=299), 300)
    assert never_started_expired(outcome, NOW + timedelta(seconds=300), 300)
    assert not never_started_expired(Outcome(kind=OutcomeKind.RUNNING), NOW, 0)
    assert never_started_expired(Outcome(kind=OutcomeKind.NEVER_STARTED), NOW, 300)


# Pods whose parts hold anything at all (for classifiers that must never crash).
GARBAGE_PODS = st.lists(
    st.dictionaries(
        st.sampled_from(["metadata", "spec", "status"]),
        st.recursive(
            st.none() | st.text(max_size=5) | st.integers(),
            lambda c: st.dictionaries(st.text(max_size=5), c, max_size=3) | st.lists(c, max_size=2),
            max_leaves=6,
        ),
        max_size=3,
    ),
    max_size=3,
)


@settings(max_examples=200)
@given(GARBAGE_PODS)
def test_garbage_pods_never_crash_the_classifier(pods: list[dict[str, Any]]) -> None:
    outcome = outcome_from(job(), pods)
    assert outcome.kind in set(OutcomeKind)


# --- The container's report -----------------------------------------------------------------


def test_plain_text_is_the_summary() -> None:
    assert parse_container_report("  built 3 images \n") == ContainerReport(
        summary="built 3 images"
    )
    assert parse_container_report(None) == ContainerReport()
    assert parse_container_report("[1, 2]").summary == "[1, 2]"


def test_json_report() -> None:
    parsed = parse_container_report(
        json.dumps(
            {
                "summary": "ok",
                "percentComplete": 50,
                "outputVariables": {"IMAGE": "acme:1", "COUNT": 3, "FAST": True},
                "currentRevision": {"revision": "abc", "changeIdentifier": "c1"},
            }
        )
    )
    assert parsed.summary == "ok"
    assert parsed.percent_complete == 50
    assert parsed.output_variables == {"IMAGE": "acme:1", "COUNT": "3", "FAST": "true"}
    assert parsed.current_revision is not None


@pytest.mark.parametrize(
    "document",
    [
        {"percentComplete": 101},
        {"outputVariables": {"A": {"nested": 1}}},
        {"failure": {"type": "Oops"}},
        {"currentRevision": {"revision": "x"}},
        {"summary": "x", "typo": 1},
    ],
)
def test_json_that_breaks_the_contract(document: dict[str, Any]) -> None:
    with pytest.raises(InvalidReportError, match="job contract"):
        parse_container_report(json.dumps(document))


# --- Reports --------------------------------------------------------------------------------


def _succeeded(message: str | None) -> Outcome:
    return Outcome(
        kind=OutcomeKind.SUCCEEDED, container="build", exit_code=0, termination_message=message
    )


def test_success_with_everything() -> None:
    message = json.dumps(
        {
            "summary": "built acme:1",
            "outputVariables": {"IMAGE": "acme:1"},
            "currentRevision": {
                "revision": "abc",
                "changeIdentifier": "c1",
                "revisionSummary": "s",
            },
        }
    )
    call = report(_succeeded(message))
    assert call.operation == "PutJobSuccessResult"
    assert call.method == "put_job_success_result"
    assert call.succeeded
    assert call.params == {
        "jobId": JOB_ID,
        "executionDetails": {
            "summary": "built acme:1",
            "externalExecutionId": EXT_ID,
            "percentComplete": 100,
        },
        "currentRevision": {"revision": "abc", "changeIdentifier": "c1", "revisionSummary": "s"},
        "outputVariables": {"IMAGE": "acme:1"},
    }


def test_success_without_a_message_has_a_default_summary() -> None:
    call = report(_succeeded(None))
    assert call.params["executionDetails"]["summary"] == f"Kubernetes Job {EXT_ID} succeeded"
    assert "outputVariables" not in call.params


def test_invalid_output_variable_name_fails_the_job_and_says_why() -> None:
    call = report(_succeeded(json.dumps({"outputVariables": {"bad name!": "x"}})))
    assert call.operation == "PutJobFailureResult"
    assert call.failure_type == "JobFailed"
    assert "bad name!" in call.params["failureDetails"]["message"]
    assert call.params["failureDetails"]["externalExecutionId"] == EXT_ID


def test_oversized_output_variables_fail_the_job() -> None:
    variables = {f"V{i}": "x" * 1000 for i in range(130)}
    call = success_result(
        job_id=JOB_ID,
        external_execution_id=EXT_ID,
        report=ContainerReport(output_variables=variables),
    )
    assert call.failure_type == "JobFailed"
    assert "122880" in call.params["failureDetails"]["message"]


def test_contract_violation_on_success_fails_the_job() -> None:
    call = report(_succeeded('{"percentComplete": 900}'))
    assert call.failure_type == "JobFailed"
    assert "percentComplete" in call.params["failureDetails"]["message"]


def test_continuation_success_keeps_output_variables_for_the_final_job() -> None:
    message = json.dumps({"outputVariables": {"A": "1"}, "percentComplete": 40})
    call = report(_succeeded(message), continuation_token="cpworker.io/v1/ci/x/uid")
    assert call.params["continuationToken"] == "cpworker.io/v1/ci/x/uid"
    assert "outputVariables" not in call.params
    assert call.params["executionDetails"]["percentComplete"] == 40


def test_container_reported_failure_type_is_used() -> None:
    message = json.dumps({"failure": {"type": "PermissionError", "message": "s3:GetObject denied"}})
    failed = Outcome(
        kind=OutcomeKind.FAILED,
        reason="BackoffLimitExceeded",
        container="fetch",
        exit_code=1,
        termination_message=message,
    )
    call = report(failed)
    assert call.failure_type == "PermissionError"
    assert "s3:GetObject denied" in call.params["failureDetails"]["message"]
    # A container may also exit 0 and still declare a failure.
    assert report(_succeeded(message)).failure_type == "PermissionError"


def test_non_zero_exit_is_job_failed_with_exit_code_reason_and_tail() -> None:
    log = "step 1\n" * 2000 + "FATAL: compiler crashed"
    failed = Outcome(
        kind=OutcomeKind.FAILED,
        reason="BackoffLimitExceeded",
        detail="Job has reached the specified backoff limit",
        container="build",
        exit_code=137,
        container_reason="OOMKilled",
        termination_message=log,
    )
    call = report(failed)
    message = call.params["failureDetails"]["message"]
    assert call.failure_type == "JobFailed"
    assert "exit code 137" in message
    assert "OOMKilled" in message
    assert "BackoffLimitExceeded" in message
    assert message.endswith("FATAL: compiler crashed")
    assert len(message) <= results.FAILURE_MESSAGE_MAX


def test_deadline_exceeded_is_job_failed() -> None:
    call = report(Outcome(kind=OutcomeKind.FAILED, reason="DeadlineExceeded"))
    assert call.failure_type == "JobFailed"
    assert "DeadlineExceeded" in call.params["failureDetails"]["message"]


def test_never_started_is_system_unavailable() -> None:
    outcome = Outcome(
        kind=OutcomeKind.NEVER_STARTED,
        reason="ImagePullBackOff",
        detail="Back-off pulling image ghcr.io/acme/missing",
        container="build",
        since=NOW,
    )
    call = report(outcome)
    assert call.failure_type == "SystemUnavailable"
    message = call.params["failureDetails"]["message"]
    assert "ImagePullBackOff" in message
    assert "ghcr.io/acme/missing" in message


def test_running_jobs_cannot_be_reported() -> None:
    with pytest.raises(ValueError, match="running"):
        report(Outcome(kind=OutcomeKind.RUNNING))


def test_known_secret_values_are_redacted() -> None:
    failed = Outcome(
        kind=OutcomeKind.FAILED,
        reason="BackoffLimitExceeded",
        exit_code=1,
        termination_message=f"token was {CANARY_CONFIG_VALUE}",
    )
    call = report(failed, redact=[CANARY_CONFIG_VALUE])
    assert CANARY_CONFIG_VALUE not in json.dumps(call.params)
    assert "***" in call.params["failureDetails"]["message"]
    success = report(_succeeded(f"done with {CANARY_CONFIG_VALUE}"), redact=[CANARY_CONFIG_VALUE])
    assert CANARY_CONFIG_VALUE not in json.dumps(success.params)


def test_failure_result_limits() -> None:
    call = results.failure_result(job_id=JOB_ID, failure_type="ConfigurationError", message="")
    assert call.params["failureDetails"]["message"] == "ConfigurationError"
    long = results.failure_result(job_id=JOB_ID, failure_type="JobFailed", message="x" * 9000)
    assert len(long.params["failureDetails"]["message"]) == results.FAILURE_MESSAGE_MAX
    assert "externalExecutionId" not in long.params["failureDetails"]


@settings(max_examples=200)
@given(st.text(max_size=6000), st.sampled_from(list(OutcomeKind)))
def test_any_termination_message_gives_a_report_within_the_limits(
    text: str, kind: OutcomeKind
) -> None:
    outcome = Outcome(kind=kind, reason="X", exit_code=1, termination_message=text, since=NOW)
    if not outcome.finished and kind is not OutcomeKind.NEVER_STARTED:
        return
    call = report(outcome)
    if call.succeeded:
        details = call.params["executionDetails"]
        assert 1 <= len(details["summary"]) <= results.SUMMARY_MAX
        assert 1 <= len(details["externalExecutionId"]) <= results.EXTERNAL_ID_MAX
        assert 0 <= details["percentComplete"] <= 100
    else:
        failure = call.params["failureDetails"]
        assert 1 <= len(failure["message"]) <= results.FAILURE_MESSAGE_MAX
        assert failure["type"] in results.FAILURE_TYPES
