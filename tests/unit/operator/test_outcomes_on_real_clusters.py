"""results, jobindex, jobtemplate and jobmanifest on what real clusters do (issue 13): cut
termination messages, pod-level ends, sidecars, refusals, runAsNonRoot, two-step conditions."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpworker import jobindex, jobtemplate, models, names, results, timeline
from cpworker.jobdata import parse_job
from cpworker.jobmanifest import build_job
from cpworker.results import Outcome, OutcomeKind, Patience, outcome_from, result_for
from tests.unit.operator import samples
from tests.unit.operator.samples import NOW
from tests.unit.operator.test_results import (
    GARBAGE_PODS,
    JOB_NAME,
    T0,
    assert_botocore_accepts,
    job,
    pod,
    terminated,
    waiting,
)


def report(outcome: Outcome) -> results.ReportCall:
    call = result_for(outcome, job_id=samples.JOB_ID, namespace="ci", job_name=JOB_NAME)
    assert_botocore_accepts(call)
    return call


def message_of(call: results.ReportCall) -> str:
    return str(call.params["failureDetails"]["message"])


def finished_with(message: str, *, exit_code: int = 0, containers: int = 1) -> Outcome:
    names_ = [f"c{i}" for i in range(containers)]
    statuses = [
        terminated(name, exit_code, message if i == 0 else None, reason="Completed")
        for i, name in enumerate(names_)
    ]
    phase = "Succeeded" if exit_code == 0 else "Failed"
    condition = ("Complete", "") if exit_code == 0 else ("Failed", "BackoffLimitExceeded")
    return outcome_from(job(condition), [pod(phase, *statuses)])


# ---- 1. termination messages cut by Kubernetes -------------------------------------------


def test_a_report_that_reached_the_file_limit_is_a_failure_saying_so() -> None:
    # What the kubelet kept of a 5000-byte JSON report: its last 4096 bytes, no longer JSON.
    full = json.dumps({"summary": "x" * 4900, "failure": {"type": "JobFailed", "message": "m"}})
    call = report(finished_with(full.encode()[-4096:].decode()))
    assert not call.succeeded
    message = message_of(call)
    assert "succeeded, but the report of container c0 reached the 4096 bytes" in message
    assert "file artifact" in message


def test_a_cut_report_never_passes_even_when_it_parses() -> None:
    parses = json.dumps({"summary": "y" * 4080})
    assert len(parses) >= 4093
    assert not report(finished_with(parses)).succeeded


def test_the_limit_is_shared_by_the_pods_containers() -> None:
    """12 KiB over 4 containers: 3072 bytes each, whatever the file limit."""
    outcome = finished_with("z" * 3072, containers=4)
    assert outcome.message_limit == 3072
    assert outcome.report_cut
    assert "12,288 bytes shared by the pod's 4 containers" in message_of(report(outcome))
    assert not finished_with("z" * 3000, containers=4).report_cut


def test_a_cut_utf8_character_still_counts_as_cut() -> None:
    """Go's JSON encoder replaced a split character's byte by U+FFFD (3 bytes)."""
    assert finished_with("\ufffd" + "a" * 4093).report_cut
    assert finished_with("a" * 4094).report_cut
    assert not finished_with("a" * 4092).report_cut


def test_a_report_under_the_limit_is_fine() -> None:
    call = report(finished_with(json.dumps({"summary": "s" * 4000})))
    assert call.succeeded


def test_a_failed_job_with_a_cut_report_says_so_too() -> None:
    full = json.dumps({"summary": "q" * 5000, "failure": {"type": "JobFailed", "message": "m"}})
    outcome = finished_with(full[-4096:], exit_code=2)
    call = report(outcome)
    assert call.failure_type == "JobFailed"
    assert "exit code 2" in message_of(call)
    assert "was cut" in message_of(call)


def test_a_failures_log_tail_at_the_limit_is_not_called_a_cut_report() -> None:
    tail = ("line of log\n" * 400)[-4096:]
    call = report(finished_with(tail, exit_code=1))
    assert "was cut" not in message_of(call)


def test_text_that_opens_like_json_but_does_not_parse_is_a_contract_violation() -> None:
    call = report(finished_with('{"summary": "built"'))
    assert not call.succeeded
    assert "not valid JSON" in message_of(call)
    assert report(finished_with("built {3} targets")).succeeded


# ---- 5. pods ended from outside ------------------------------------------------------------


def evicted(**status: Any) -> dict[str, Any]:
    failed = pod(
        "Failed",
        terminated(
            "build", 137, "The container could not be located", reason="ContainerStatusUnknown"
        ),
    )
    failed["status"].update(status)
    return failed


def test_a_kubelet_eviction_names_the_eviction_not_the_container() -> None:
    ended = evicted(reason="Evicted", message="The node was low on resource: memory. ")
    call = report(outcome_from(job(("FailureTarget", "BackoffLimitExceeded")), [ended]))
    message = message_of(call)
    assert call.failure_type == "SystemUnavailable"
    assert f"pod {JOB_NAME}-x Evicted: The node was low on resource: memory" in message
    assert "exit code" not in message
    assert "ContainerStatusUnknown" not in message
    assert "could not be located" not in message


def test_an_api_eviction_is_named_by_its_disruption_target() -> None:
    ended = pod(
        "Failed",
        terminated("build", 143),
        conditions=(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
            },
        ),
    )
    message = message_of(report(outcome_from(job(("Failed", "BackoffLimitExceeded")), [ended])))
    assert "DisruptionTarget (EvictionByEvictionAPI): Eviction API: evicting" in message
    assert "exit code 143" not in message


def test_a_kubelet_rejection_without_container_statuses_says_why() -> None:
    rejected = pod("Failed")
    rejected["status"].update(reason="OutOfcpu", message="Pod was rejected: no cpu")
    message = message_of(report(outcome_from(job(("Failed", "BackoffLimitExceeded")), [rejected])))
    assert "OutOfcpu: Pod was rejected: no cpu" in message


def test_a_pod_end_recorded_on_the_job_speaks_for_a_pod_that_is_gone() -> None:
    ended = evicted(reason="Evicted", message="low on memory")
    record = results.pod_end_record(ended)
    assert record is not None
    failed = job(("Failed", "BackoffLimitExceeded"))
    failed["metadata"]["annotations"] = {names.ANNOTATION_POD_ENDED: record}
    call = report(outcome_from(failed, []))
    assert call.failure_type == "SystemUnavailable"
    assert "Evicted: low on memory" in message_of(call)
    assert results.pod_end_record(pod("Running")) is None


def test_a_replacement_that_failed_by_itself_is_blamed_not_an_earlier_eviction() -> None:
    record = results.pod_end_record(
        {**evicted(reason="Evicted"), "metadata": {"name": "old", "creationTimestamp": T0}}
    )
    failed = job(("Failed", "BackoffLimitExceeded"))
    failed["metadata"]["annotations"] = {names.ANNOTATION_POD_ENDED: str(record)}
    replacement = pod("Failed", terminated("build", 3))
    call = report(outcome_from(failed, [replacement]))
    assert call.failure_type == "JobFailed"
    assert "container build, exit code 3" in message_of(call)


# ---- 7. sidecars ---------------------------------------------------------------------------


def with_native_sidecar(phase: str, main_exit: int) -> dict[str, Any]:
    body = pod(
        phase,
        terminated("build", main_exit, "2 tests failed" if main_exit else None),
        init=(terminated("log-shipper", 143),),
    )
    body["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    return body


def test_a_native_sidecar_stopped_at_shutdown_is_never_blamed() -> None:
    failed = outcome_from(
        job(("Failed", "BackoffLimitExceeded")), [with_native_sidecar("Failed", 2)]
    )
    assert failed.container == "build"
    assert failed.exit_code == 2
    done = outcome_from(job(("Complete", "")), [with_native_sidecar("Succeeded", 0)])
    assert report(done).succeeded


def test_a_failing_regular_init_container_is_still_blamed() -> None:
    body = pod("Failed", init=(terminated("setup", 1),))
    outcome = outcome_from(job(("Failed", "BackoffLimitExceeded")), [body])
    assert outcome.container == "setup"


def two_containers(sidecar: str, main: dict[str, Any], annotations: str | None = None) -> Any:
    body = pod("Running", main, {"name": sidecar, "state": {"running": {}}})
    if annotations is not None:
        body["metadata"]["annotations"] = {names.ANNOTATION_SIDECARS: annotations}
    return body


@pytest.mark.parametrize(
    ("sidecar", "annotation"),
    [("istio-proxy", None), ("linkerd-proxy", None), ("log-shipper", "log-shipper, other")],
)
def test_a_classic_sidecar_left_running_ends_the_job(sidecar: str, annotation: str | None) -> None:
    done = terminated("build", 0, '{"summary": "built"}', reason="Completed")
    outcome = outcome_from(job(), [two_containers(sidecar, done, annotation)])
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.lingering == (sidecar,)
    assert report(outcome).params["executionDetails"]["summary"] == "built"


def test_a_classic_sidecar_is_not_blamed_for_the_main_containers_failure() -> None:
    outcome = outcome_from(job(), [two_containers("istio-proxy", terminated("build", 3))])
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.container == "build"
    assert "Sidecars still running (istio-proxy) were stopped" in message_of(report(outcome))


def test_an_unmarked_second_container_is_waited_for() -> None:
    done = terminated("build", 0, reason="Completed")
    assert outcome_from(job(), [two_containers("tests", done)]).kind is OutcomeKind.RUNNING


def test_marking_every_container_a_sidecar_marks_none() -> None:
    body = two_containers("istio-proxy", {"name": "build", "state": {"running": {}}}, "build")
    assert results.classic_sidecars(body) == set()
    helper = two_containers("cpworker-push", {"name": "build", "state": {"running": {}}})
    helper["metadata"]["annotations"] = {names.ANNOTATION_SIDECARS: "cpworker-push"}
    assert results.classic_sidecars(helper) == set()


def test_a_classic_sidecar_that_failed_alone_is_blamed() -> None:
    body = pod(
        "Failed",
        terminated("build", 0, reason="Completed"),
        terminated("istio-proxy", 1),
    )
    outcome = outcome_from(job(("Failed", "BackoffLimitExceeded")), [body])
    assert outcome.container == "istio-proxy"


def test_the_sidecars_annotation_is_the_one_reserved_key_a_pod_template_may_set() -> None:
    spec = samples.spec()
    template = spec["jobTemplate"]["spec"]["template"]
    template.setdefault("metadata", {})["annotations"] = {names.ANNOTATION_SIDECARS: "proxy"}
    assert jobtemplate.validate_job_template(spec["jobTemplate"]) == []
    spec["jobTemplate"]["metadata"] = {"annotations": {names.ANNOTATION_SIDECARS: "proxy"}}
    assert jobtemplate.validate_job_template(spec["jobTemplate"])  # not on the Job itself
    del spec["jobTemplate"]["metadata"]
    template["metadata"]["labels"] = {names.ANNOTATION_SIDECARS: "proxy"}
    assert jobtemplate.validate_job_template(spec["jobTemplate"])  # nor as a label


# ---- 5. podReplacementPolicy ----------------------------------------------------------------


def test_every_job_replaces_pods_only_once_they_stopped() -> None:
    manifest = build_job(
        worker=samples.WORKER,
        spec=models.parse_spec(samples.spec()),
        job=parse_job(samples.RAW_JOB),
        secret_property_names=frozenset(),
        settings=samples.settings(),
        now=NOW,
    )
    assert manifest["spec"]["podReplacementPolicy"] == "Failed"


def test_a_template_asking_for_replacement_while_terminating_is_refused() -> None:
    spec = samples.spec()
    spec["jobTemplate"]["spec"]["podReplacementPolicy"] = "TerminatingOrFailed"
    [problem] = jobtemplate.validate_job_template(spec["jobTemplate"])
    assert "podReplacementPolicy is TerminatingOrFailed: must be Failed" in problem
    spec["jobTemplate"]["spec"]["podReplacementPolicy"] = "Failed"
    assert jobtemplate.validate_job_template(spec["jobTemplate"]) == []


# ---- 4, 6. pods that cannot start ----------------------------------------------------------


def no_pod() -> Outcome:
    released = job()
    released["status"]["startTime"] = T0
    return outcome_from(released, [])


def failed_create(message: str, stamp: str = T0) -> dict[str, Any]:
    return {
        "reason": "FailedCreate",
        "message": f"Error creating: {message}",
        "lastTimestamp": stamp,
    }


@pytest.mark.parametrize(
    ("message", "failure_type", "patience"),
    [
        ("exceeded quota: pods, requested: count/pods=1", "SystemUnavailable", Patience.QUOTA),
        ("failed quota: q: must specify requests.cpu for: c", "ConfigurationError", Patience.NONE),
        ('violates PodSecurity "baseline:latest": privileged', "ConfigurationError", Patience.NONE),
        (
            "maximum cpu usage per Container is 1, but limit is 2",
            "ConfigurationError",
            Patience.NONE,
        ),
        ("cpu max limit to request ratio per Container is 2", "ConfigurationError", Patience.NONE),
        ('admission webhook "w" denied the request: no', "ConfigurationError", Patience.NONE),
        ("error looking up service account ci/x: not found", "SystemUnavailable", Patience.GRACE),
        ("something new", "SystemUnavailable", Patience.GRACE),
    ],
)
def test_refusals_are_classified_by_the_admission_step_that_refused(
    message: str, failure_type: str, patience: Patience
) -> None:
    outcome = results.with_refusal(no_pod(), [failed_create(message)])
    assert outcome.reason == "FailedCreate"
    assert (outcome.failure_type, outcome.patience) == (failure_type, patience)
    call = report(outcome)
    assert call.failure_type == failure_type
    assert message in message_of(call)


def test_the_newest_refusal_speaks() -> None:
    events = [
        failed_create("exceeded quota: pods", "2026-11-29T09:00:05Z"),
        failed_create('violates PodSecurity "baseline:latest": hostPath', "2026-11-29T09:00:09Z"),
        {"reason": "SuccessfulCreate", "lastTimestamp": "2026-11-29T09:00:10Z"},
    ]
    assert results.with_refusal(no_pod(), events).patience is Patience.NONE
    assert results.with_refusal(no_pod(), []) == no_pod()


def test_patience_decides_how_long_a_pod_that_cannot_start_is_waited_for() -> None:
    start = no_pod()
    assert start.since is not None
    quota = results.with_refusal(start, [failed_create("exceeded quota: pods")])
    later = start.since + timedelta(seconds=400)
    assert results.never_started_expired(start, later, 300, quota_wait_seconds=1800)
    assert not results.never_started_expired(quota, later, 300, quota_wait_seconds=1800)
    assert results.never_started_expired(
        quota, start.since + timedelta(seconds=1800), 300, quota_wait_seconds=1800
    )
    refused = results.with_refusal(start, [failed_create("violates PodSecurity")])
    assert results.never_started_expired(refused, start.since, 300, quota_wait_seconds=1800)


@pytest.mark.parametrize(
    "message",
    [
        'container has runAsNonRoot and image will run as root (pod: "p_ci(u)", container: build)',
        "container has runAsNonRoot and image has non-numeric user (app), cannot verify",
        'container\'s runAsUser breaks non-root policy (pod: "p_ci(u)", container: build)',
    ],
)
def test_run_as_non_root_with_a_root_image_is_a_configuration_error_at_once(message: str) -> None:
    stuck = pod("Pending", waiting("build", "CreateContainerConfigError", message))
    outcome = outcome_from(job(), [stuck])
    assert outcome.patience is Patience.NONE
    call = report(outcome)
    assert call.failure_type == "ConfigurationError"
    assert message in message_of(call)
    assert "USER" in message_of(call)
    assert "runAsNonRoot: false" in message_of(call)


def test_other_container_config_errors_keep_their_grace() -> None:
    missing = waiting("build", "CreateContainerConfigError", 'configmap "settings" not found')
    outcome = outcome_from(job(), [pod("Pending", missing)])
    assert outcome.patience is Patience.GRACE
    assert report(outcome).failure_type == "SystemUnavailable"


# ---- 8. two-step terminal conditions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "ending"),
    [
        ((("SuccessCriteriaMet", ""),), "Complete"),
        ((("SuccessCriteriaMet", ""), ("Complete", "")), "Complete"),
        ((("FailureTarget", "DeadlineExceeded"),), "Failed"),
        ((("Failed", "DeadlineExceeded"),), "Failed"),
        ((), None),
    ],
)
def test_either_terminal_step_decides_the_end(
    conditions: tuple[tuple[str, str], ...], ending: str | None
) -> None:
    body = job(*conditions)
    assert jobindex.finished_condition(body) == ending
    assert jobindex.summarize_job(body).finished == ending
    found = timeline.terminal_condition(body)
    assert (found[0] if found else None) == ending


def test_the_job_finished_when_its_end_was_decided() -> None:
    body = job(("SuccessCriteriaMet", ""), ("Complete", ""))
    body["status"]["conditions"][0]["lastTransitionTime"] = "2026-11-29T09:00:10Z"
    body["status"]["conditions"][1]["lastTransitionTime"] = "2026-11-29T09:00:40Z"
    assert timeline.timeline_of(body).finished == NOW.replace(hour=9, minute=0, second=10)


# ---- the pod index keeps fresh what the classification reads ---------------------------------


def test_a_container_ending_or_a_disruption_changes_the_pods_index_entry() -> None:
    running = two_containers("istio-proxy", {"name": "build", "state": {"running": {}}})
    ended = two_containers("istio-proxy", terminated("build", 0))
    assert jobindex.summarize_pod(running) != jobindex.summarize_pod(ended)
    disrupted = pod(
        "Running",
        {"name": "build", "state": {"running": {}}},
        conditions=({"type": "DisruptionTarget", "status": "True"},),
    )
    assert jobindex.summarize_pod(disrupted).ended_by == "DisruptionTarget"
    assert jobindex.summarize_pod(running).ended_by is None


@settings(max_examples=100)
@given(st.sampled_from(["Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"]), GARBAGE_PODS)
def test_garbage_pods_of_a_finished_job_never_crash_the_classifier(
    condition: str, pods: list[dict[str, Any]]
) -> None:
    outcome = outcome_from(job((condition, "")), pods)
    assert outcome.finished
    report(outcome)
