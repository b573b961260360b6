"""The operator on a cluster that behaves as real ones do (issue 13).

The local Kubernetes models the real kubelet, Job controller and admission chain
(docs/sandbox-kubernetes.md, "Fidelity"); each test here runs a pipeline's custom action
through the real operator on that model and checks what CodePipeline is told. Every test
failed before the operator was fixed for the behaviour it names (how, in each docstring),
except the proofs marked as such.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from cpworker import names
from cpworker.sandbox.kube.admission import AdmissionConfig, DenyingWebhook
from cpworker.sandbox.kube.standin import KubeStandIn
from tests.e2e.conftest import NAMESPACE, Stack, wait_for, worker_manifest
from tests.e2e.test_failures import action_detail, error_of

PREFIX = "sandbox.cpworker.io/"
Watch: Any = kubernetes.watch.Watch  # the kubernetes package is untyped: one typed door
# The one cpworker.io/ key a template may set (docs/job-contract.md, "Sidecars").
SIDECARS_ANNOTATION = "cpworker.io/sidecars"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
CORE = f"/api/v1/namespaces/{NAMESPACE}"


def run_to_end(
    stack: Stack,
    *,
    annotations: dict[str, str] | None = None,
    timeout: float = 60,
    settings: dict[str, Any] | None = None,
    edit: Any = None,
) -> tuple[Any, str, str]:
    """Start the operator, apply a worker (`edit` changes its manifest), run one execution;
    answers (scenario, execution id, final status)."""
    scenario = stack.cp_scenario()
    stack.start_operator(**(settings or {}))
    manifest = worker_manifest(scenario, annotations=annotations)
    if edit is not None:
        edit(manifest)
    stack.cluster.apply(manifest)
    execution_id = scenario.start(stack.cp_client)
    return scenario, execution_id, scenario.wait(stack.cp_client, execution_id, timeout=timeout)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def summary_of(stack: Stack, scenario: Any, execution_id: str) -> str:
    detail = action_detail(stack.cp_client, scenario, execution_id, "Build")
    return str(detail["output"]["executionResult"]["externalExecutionSummary"])


def failed_creates(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in stack.cluster.events() if e.get("reason") == "FailedCreate"]


# ---- 1. termination messages are cut by the kubelet ------------------------------------------


def test_a_report_larger_than_kubernetes_keeps_fails_the_job_saying_so(stack: Stack) -> None:
    """Before: the kubelet kept the last 4096 bytes, the cut JSON no longer parsed and was sent
    as the plain-text summary of a *success*, although the report declared a failure."""
    report = json.dumps(
        {
            "summary": "compiled " + "x" * 4800,
            "failure": {"type": "ConfigurationError", "message": "the build config is wrong"},
        }
    )
    assert len(report.encode()) > 4096
    scenario, execution_id, status = run_to_end(
        stack,
        annotations={PREFIX + "duration": "200ms", PREFIX + "termination-message": report},
    )
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "JobFailed"
    assert "4096 bytes" in error["message"]
    assert "file artifact" in error["message"]


# ---- 3. watch gaps ---------------------------------------------------------------------------


def test_a_job_deleted_in_a_watch_gap_is_reported_and_frees_its_slot(
    stack: Stack, kube: KubeStandIn
) -> None:
    """A running Job is deleted while the operator's Job watch is down, and the history is
    compacted before it resumes (an API server restart): no DELETED event ever comes. The
    relist or the supervisor's 404 on the Job finds it, whichever comes first. Before (neither
    existed): kopf's index kept the ghost for good; the job got no result (CodePipeline timed
    it out) and held the worker's only slot, so nothing else ran."""
    scenario = stack.cp_scenario()
    stack.start_operator(job_relist_seconds=2.0)
    stack.cluster.apply(
        worker_manifest(
            scenario, annotations={PREFIX + "duration": "never"}, spec={"maxInFlight": 1}
        )
    )
    first = scenario.start(stack.cp_client)
    [job] = wait_for(
        lambda: [j for j in stack.cluster.jobs() if (j.get("status") or {}).get("active")],
        what="the first job running",
    )
    name = job["metadata"]["name"]
    jobs_key = ("batch", "jobs")

    def delete_in_a_gap() -> None:
        store = kube.server.store
        store.drop_watches(lambda key: key == jobs_key)  # the watch is down ...
        stored = store.get(jobs_key, NAMESPACE, name)
        assert stored is not None
        store.remove(jobs_key, NAMESPACE, name, stored)  # ... the Job goes meanwhile ...
        store.compact()  # ... and the resume finds the history gone (410)

    kube.call(delete_in_a_gap)
    assert scenario.wait(stack.cp_client, first, timeout=60) == "Failed"
    error = error_of(stack.cp_client, scenario, first)
    assert "was deleted before it finished" in error["message"]
    # The slot is free again: the next execution's job is dispatched.
    second = scenario.start(stack.cp_client)
    wait_for(
        lambda: any(j["metadata"]["name"] != name for j in stack.cluster.jobs()),
        what="the next job dispatched",
    )
    stack.cp_client.stop_pipeline_execution(
        pipelineName=scenario.pipeline_name, pipelineExecutionId=second, abandon=True
    )


# ---- 4. pod creation refused by admission and quota ------------------------------------------


def _label_namespace(stack: Stack, labels: dict[str, str]) -> None:
    stack.cluster.request("PATCH", CORE, {"metadata": {"labels": labels}})


def _privileged(manifest: dict[str, Any]) -> None:
    pod_spec(manifest)["containers"][0]["securityContext"] = {"privileged": True}


def _cpu_limit(manifest: dict[str, Any]) -> None:
    pod_spec(manifest)["containers"][0]["resources"] = {"limits": {"cpu": "2"}}


REFUSALS = {
    "pod-security": (_privileged, 'violates PodSecurity "baseline:latest"'),
    "limit-range": (_cpu_limit, "maximum cpu usage per Container is 1, but limit is 2"),
    "webhook": (None, 'admission webhook "policy.example.com" denied the request'),
}


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_pod_refused_by_admission_fails_with_the_kubernetes_reason(
    stack: Stack, kube: KubeStandIn, refusal: str
) -> None:
    """Before: SystemUnavailable "never started: NoPodCreated" after the grace period, without
    the reason (the operator could not read the Job's FailedCreate event)."""
    edit, reason = REFUSALS[refusal]
    if refusal == "pod-security":
        _label_namespace(stack, {"pod-security.kubernetes.io/enforce": "baseline"})
    elif refusal == "limit-range":
        kube.apply_manifests(
            [
                {
                    "apiVersion": "v1",
                    "kind": "LimitRange",
                    "metadata": {"name": "small", "namespace": NAMESPACE},
                    "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
                }
            ]
        )
    else:
        hook = DenyingWebhook("policy.example.com", "images must come from registry.example.com")
        kube.configure_admission(AdmissionConfig(webhooks=(hook,)))
    scenario, execution_id, status = run_to_end(stack, edit=edit)
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "ConfigurationError"
    assert reason in error["message"]
    wait_for(lambda: not stack.cluster.jobs(), what="the refused Job deleted")


def _pod_quota(kube: KubeStandIn) -> None:
    """Room for one pod, taken by a pod that runs until deleted."""
    kube.apply_manifests(
        [
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "pods", "namespace": NAMESPACE},
                "spec": {"hard": {"count/pods": "1"}},
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "hog",
                    "namespace": NAMESPACE,
                    "annotations": {PREFIX + "duration": "never"},
                },
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]},
            },
        ]
    )


def test_a_quota_shortage_waits_for_room_and_then_runs(stack: Stack, kube: KubeStandIn) -> None:
    """Before: the job failed (SystemUnavailable, NoPodCreated) once the never-started grace
    (3 s here) was over, although the quota freed up later."""
    _pod_quota(kube)
    scenario = stack.cp_scenario()
    stack.start_operator(quota_wait_seconds=300)
    stack.cluster.apply(worker_manifest(scenario))
    execution_id = scenario.start(stack.cp_client)
    wait_for(lambda: failed_creates(stack), what="the pod refused by the quota")
    # Past the never-started grace: a shortage is waited out, not failed.
    time.sleep(5)
    assert scenario.status(stack.cp_client, execution_id) == "InProgress"
    stack.cluster.request("DELETE", f"{CORE}/pods/hog", {"gracePeriodSeconds": 0})
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


def test_a_quota_shortage_that_lasts_fails_with_the_reason(stack: Stack, kube: KubeStandIn) -> None:
    """Before: SystemUnavailable "never started: NoPodCreated", the quota unnamed."""
    _pod_quota(kube)
    scenario, execution_id, status = run_to_end(stack, settings={"quota_wait_seconds": 2})
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "SystemUnavailable"
    assert "exceeded quota: pods" in error["message"]
    assert "CPWORKER_QUOTA_WAIT_SECONDS" in error["message"]


def test_a_secret_refused_by_quota_fails_the_job_once(stack: Stack, kube: KubeStandIn) -> None:
    """Before: the claim failed after the Job was created; recovery then acknowledged the job
    every round, failed to write the Secret again, and never ran nor failed it."""
    kube.apply_manifests(
        [
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "secrets", "namespace": NAMESPACE},
                "spec": {"hard": {"count/secrets": "0"}},
            }
        ]
    )
    scenario, execution_id, status = run_to_end(stack, timeout=30)
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "SystemUnavailable"
    assert "exceeded quota: secrets" in error["message"]
    assert stack.calls("AcknowledgeJob") == 1
    wait_for(lambda: not stack.cluster.jobs(), what="the Job without a Secret deleted")


# ---- 5. evictions and pod replacement --------------------------------------------------------


@pytest.fixture
def pod_history(kube_api: Any) -> Iterator[list[tuple[str, str, str, bool]]]:
    """Every change of the job pods, in the order the API server made them:
    (event type, pod name, phase, being deleted)."""
    seen: list[tuple[str, str, str, bool]] = []
    stop = threading.Event()
    core: Any = kubernetes.client.CoreV1Api(kube_api)

    def follow() -> None:
        while not stop.is_set():
            watch = Watch()
            for event in watch.stream(
                core.list_namespaced_pod,
                NAMESPACE,
                label_selector=names.LABEL_MANAGED_BY,
                timeout_seconds=1,
            ):
                pod = event["object"]
                seen.append(
                    (
                        event["type"],
                        pod.metadata.name,
                        pod.status.phase if pod.status else "",
                        pod.metadata.deletion_timestamp is not None,
                    )
                )
                if stop.is_set():
                    break

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join(5)


def running_pod(stack: Stack) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        pods = [
            p
            for p in stack.cluster.pods()
            if p["metadata"]["name"].startswith("cpw-")
            and (p.get("status") or {}).get("phase") == "Running"
        ]
        return pods[0] if pods else None

    pod: dict[str, Any] = wait_for(find, what="the job's pod running")
    return pod


def overlaps(history: list[tuple[str, str, str, bool]]) -> list[str]:
    """Pods created while another pod of the job was still running."""
    alive: set[str] = set()
    started_beside: list[str] = []
    for kind, name, phase, _ in history:
        if kind == "ADDED" and name not in alive and alive:
            started_beside.append(name)
        if kind == "DELETED" or phase in {"Succeeded", "Failed"}:
            alive.discard(name)
        else:
            alive.add(name)
    return started_beside


def test_an_evicted_pod_is_replaced_only_once_it_stopped(
    stack: Stack, pod_history: list[tuple[str, str, str, bool]]
) -> None:
    """Before: with the default podReplacementPolicy, the Job controller started the
    replacement while the evicted pod was still stopping: the job ran twice at once."""
    scenario = stack.cp_scenario()
    stack.start_operator()
    manifest = worker_manifest(
        scenario, annotations={PREFIX + "duration": "4s", PREFIX + "stop-duration": "1s"}
    )
    manifest["spec"]["jobTemplate"]["spec"]["backoffLimit"] = 1
    stack.cluster.apply(manifest)
    execution_id = scenario.start(stack.cp_client)
    pod = running_pod(stack)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": pod["metadata"]}
    stack.cluster.request("POST", f"{CORE}/pods/{pod['metadata']['name']}/eviction", eviction)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"
    [job] = stack.cluster.jobs()
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    created = {name for kind, name, _, _ in pod_history if kind == "ADDED"}
    assert len(created) == 2  # the evicted pod and its replacement
    assert overlaps(pod_history) == []


def _kubelet_eviction(stack: Stack, kube: KubeStandIn, pod: dict[str, Any]) -> None:
    kube.evict_pod(NAMESPACE, pod["metadata"]["name"])


def _api_eviction(stack: Stack, kube: KubeStandIn, pod: dict[str, Any]) -> None:
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": pod["metadata"]}
    stack.cluster.request("POST", f"{CORE}/pods/{pod['metadata']['name']}/eviction", eviction)


DISRUPTIONS = {
    "kubelet-eviction": (_kubelet_eviction, {}, ["Evicted", "The node was low on resource"]),
    # The evicted pod stops at once and is gone as soon as the Job controller counted it:
    # the operator recorded why on the Job when it saw the pod's DisruptionTarget.
    "api-eviction": (_api_eviction, {}, ["DisruptionTarget", "EvictionByEvictionAPI"]),
    "out-of-cpu": (None, {PREFIX + "fail-reason": "OutOfcpu"}, ["OutOfcpu", "Pod was rejected"]),
}


@pytest.mark.parametrize("disruption", DISRUPTIONS)
def test_a_pod_level_failure_is_reported_with_its_reason(
    stack: Stack, kube: KubeStandIn, disruption: str
) -> None:
    """Before: a kubelet eviction was blamed on "container build, exit code 137
    (ContainerStatusUnknown)", an API eviction on exit code 143, and OutOfcpu said nothing."""
    act, annotations, expected = DISRUPTIONS[disruption]
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={PREFIX + "duration": "30s", **annotations})
    )
    execution_id = scenario.start(stack.cp_client)
    if act is not None:
        act(stack, kube, running_pod(stack))
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "SystemUnavailable", error["message"]
    for text in expected:
        assert text in error["message"]
    assert "ContainerStatusUnknown" not in error["message"]
    assert "exit code" not in error["message"]


# ---- 6. runAsNonRoot with a root image -------------------------------------------------------


def test_a_root_image_under_run_as_non_root_is_a_configuration_error(stack: Stack) -> None:
    """Before: SystemUnavailable "never started" after the grace period, with the kubelet's
    message only."""
    scenario, execution_id, status = run_to_end(stack, annotations={PREFIX + "image-user": "0"})
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "ConfigurationError"
    assert "image will run as root" in error["message"]
    assert "USER" in error["message"]
    assert "runAsNonRoot: false" in error["message"]


# ---- 7. sidecars -----------------------------------------------------------------------------


def _with_classic_sidecar(name: str, *, marked: bool, exit_code: int = 0) -> Any:
    def edit(manifest: dict[str, Any]) -> None:
        template = manifest["spec"]["jobTemplate"]["spec"]
        template["activeDeadlineSeconds"] = 30
        pod_spec(manifest)["containers"].append({"name": name, "image": "proxy:1"})
        annotations = template["template"]["metadata"]["annotations"]
        annotations[f"{PREFIX}duration.{name}"] = "never"
        annotations[f"{PREFIX}exit-code.build"] = str(exit_code)
        annotations[f"{PREFIX}termination-message.build"] = '{"summary": "built it"}'
        if marked:
            annotations[SIDECARS_ANNOTATION] = name

    return edit


@pytest.mark.parametrize(
    ("sidecar", "marked"), [("istio-proxy", False), ("log-shipper", True)], ids=["known", "marked"]
)
def test_a_classic_sidecar_does_not_keep_the_job_running(
    stack: Stack, sidecar: str, marked: bool
) -> None:
    """Before: the sidecar kept the pod Running, the Job failed with DeadlineExceeded (and a
    marked sidecar's annotation was refused as reserved)."""
    scenario, execution_id, status = run_to_end(
        stack, edit=_with_classic_sidecar(sidecar, marked=marked)
    )
    assert status == "Succeeded"
    assert summary_of(stack, scenario, execution_id) == "built it"
    # Nothing would stop the sidecar: the operator deletes the Job once it reported it.
    wait_for(lambda: not stack.cluster.jobs(), what="the Job deleted after its report")


def test_a_classic_sidecar_is_not_blamed_for_a_failure(stack: Stack) -> None:
    """Before: the Job ended only at its deadline (DeadlineExceeded), and the sidecar killed
    then could take the blame."""
    scenario, execution_id, status = run_to_end(
        stack, edit=_with_classic_sidecar("istio-proxy", marked=False, exit_code=3)
    )
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert error["code"] == "JobFailed"
    assert "container build, exit code 3" in error["message"]
    assert "container istio-proxy" not in error["message"]


def test_a_native_sidecar_stopped_at_shutdown_is_not_blamed(stack: Stack) -> None:
    """Before: "container log-shipper, exit code 143": the sidecar, stopped with SIGTERM after
    the main container failed, came first in the blame order."""

    def edit(manifest: dict[str, Any]) -> None:
        pod_spec(manifest)["initContainers"] = [
            {"name": "log-shipper", "image": "shipper:1", "restartPolicy": "Always"}
        ]

    scenario, execution_id, status = run_to_end(
        stack,
        annotations={
            PREFIX + "duration.log-shipper": "never",
            PREFIX + "duration.build": "200ms",
            PREFIX + "exit-code.build": "3",
            PREFIX + "termination-message.build": "2 tests failed",
        },
        edit=edit,
    )
    assert status == "Failed"
    error = error_of(stack.cp_client, scenario, execution_id)
    assert "container build, exit code 3" in error["message"]
    assert "2 tests failed" in error["message"]
    assert "log-shipper" not in error["message"]


# ---- 8. two-step terminal conditions ---------------------------------------------------------


@pytest.mark.kube_standin(runner={"terminal_condition_delay": 30.0})
def test_a_job_deleted_between_the_two_terminal_conditions_is_reported_by_its_outcome(
    stack: Stack,
) -> None:
    """Before: the Job's watch event of SuccessCriteriaMet reported nothing (only Complete
    counted as finished); deleted before Complete, it was failed as "deleted before it
    finished"."""
    scenario = stack.cp_scenario()
    # A slow safety net (supervision every 5 s): the watch event has to do it.
    stack.start_operator(cancel_probe_seconds=10.0, never_started_grace_seconds=30.0)
    stack.cluster.apply(worker_manifest(scenario, annotations={PREFIX + "duration": "200ms"}))
    execution_id = scenario.start(stack.cp_client)

    def criteria_met() -> dict[str, Any] | None:
        for job in stack.cluster.jobs():
            conditions = {c["type"]: c["status"] for c in job["status"].get("conditions") or []}
            if conditions.get("SuccessCriteriaMet") == "True":
                assert "Complete" not in conditions
                return job
        return None

    job = wait_for(criteria_met, what="SuccessCriteriaMet")
    stack.cluster.request(
        "DELETE", f"{JOBS}/{job['metadata']['name']}", {"propagationPolicy": "Background"}
    )
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


# ---- 9. TTL, stale owners, slow GC, mounted Secret updates -----------------------------------


def test_the_ttl_deletes_a_reported_job_in_the_foreground_and_nothing_else_happens(
    stack: Stack,
) -> None:
    """A proof: the TTL controller deletes the reported Job (Foreground, UID precondition,
    counted from the finish time); the operator sends one result and reports nothing else."""
    _, _, status = run_to_end(
        stack,
        annotations={PREFIX + "duration": "200ms"},
        settings={"finished_job_ttl_seconds": 1},
    )
    assert status == "Succeeded"
    wait_for(lambda: not stack.cluster.jobs(), what="the TTL deleting the Job")
    time.sleep(1)  # a few supervision rounds after the deletion
    assert stack.calls("PutJobSuccessResult") == 1
    assert stack.calls("PutJobFailureResult") == 0
    reasons = [e["reason"] for e in stack.cluster.events()]
    assert "JobFailed" not in reasons
    assert ((stack.cluster.worker() or {}).get("status") or {}).get("succeeded") == 1


GC_DELAY = 3.0


@pytest.mark.kube_standin(gc_delay=GC_DELAY)
def test_a_secret_left_by_an_earlier_job_of_the_same_name_is_taken_over(stack: Stack) -> None:
    """A proof of the fix on main (jobrecord.ensure_secret rewrites the owner): a Secret that
    an earlier Job of the same name left behind still names that Job; the garbage collector,
    slow as real ones are, would delete it under the new Job's running pod (checked: it does
    when the owner is not rewritten)."""
    scenario = stack.cp_scenario()
    stack.start_operator()
    manifest = worker_manifest(
        scenario, annotations={PREFIX + "duration": "10s"}, spec={"paused": True}
    )
    stack.cluster.apply(manifest)
    execution_id = scenario.start(stack.cp_client)
    job = wait_for(
        lambda: next(
            (j for j in stack.codepipeline.jobs() if j.execution_id == execution_id), None
        ),
        what="the CodePipeline job",
    )
    name = names.job_object_name(job.job_id)
    earlier = stack.cluster.request(
        "POST",
        JOBS,
        {
            "metadata": {"name": name},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "x:1"}],
                    }
                },
            },
        },
    )
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": earlier["metadata"]["uid"],
        "controller": True,
    }
    stack.cluster.request(
        "POST",
        f"{CORE}/secrets",
        {"metadata": {"name": name, "ownerReferences": [owner]}, "data": {}},
    )
    stack.cluster.request("DELETE", f"{JOBS}/{name}", {"propagationPolicy": "Background"})
    deleted_at = time.monotonic()
    manifest["spec"]["paused"] = False
    stack.cluster.apply(manifest)
    running_pod(stack)
    # Past the collector's pass over the earlier Job's dependents, the job still running.
    time.sleep(max(0.0, deleted_at + GC_DELAY + 2 - time.monotonic()))
    assert scenario.status(stack.cp_client, execution_id) == "InProgress"
    secret = stack.cluster.request("GET", f"{CORE}/secrets/{name}")
    assert secret is not None, "the garbage collector deleted the running job's Secret"
    assert [ref["uid"] for ref in secret["metadata"]["ownerReferences"]] != [owner["uid"]]
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


CREDENTIALS_WATCHER = """
import hashlib, json, os, sys, time
path = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
def digest():
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
first, deadline = digest(), time.monotonic() + 40
while digest() == first:
    if time.monotonic() > deadline:
        sys.exit("the credentials file never changed")
    time.sleep(0.1)
with open(os.environ["CPWORKER_RESULT_FILE"], "w") as f:
    json.dump({"summary": "saw refreshed credentials"}, f)
"""


@pytest.mark.kube_standin(runner={"secret_sync_delay": 1.0})
def test_a_credential_refresh_reaches_the_running_pod(stack: Stack) -> None:
    """A proof, end to end: the operator's refresh (GetJobDetails -> the Secret) reaches the
    mounted file of the running container after the kubelet's sync delay."""
    container = {
        "name": "build",
        "image": "example.com/builder:1",
        "command": [sys.executable, "-c", CREDENTIALS_WATCHER],
    }
    scenario = stack.cp_scenario()
    stack.start_operator(credentials_refresh_seconds=2)
    # Without the artifact helpers: in local-exec mode they would really run against S3.
    manifest = worker_manifest(
        scenario,
        annotations={PREFIX + "exec": "local"},
        container=container,
        spec={"artifacts": {"enabled": False}},
    )
    stack.cluster.apply(manifest)
    execution_id = scenario.start(stack.cp_client)
    status = scenario.wait(stack.cp_client, execution_id, timeout=60)
    assert status == "Succeeded", action_detail(stack.cp_client, scenario, execution_id, "Build")[
        "output"
    ]
    assert summary_of(stack, scenario, execution_id) == "saw refreshed credentials"
    assert stack.calls("GetJobDetails") >= 1
