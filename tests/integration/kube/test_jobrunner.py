"""The simulated job runner: each scripted outcome, as the kubernetes client sees it."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import BatchV1Api, CoreV1Api

from tests.integration.kube.helpers import is_gone, wait_for

NS = "default"
PREFIX = "sandbox.cpworker.io/"


def job(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1"}],
    }
    pod_spec.update(spec.pop("pod", {}))
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"metadata": {"annotations": annotations or {}}, "spec": pod_spec},
            **spec,
        },
    }


@pytest.fixture
def batch(kube_api: Any) -> Any:
    return BatchV1Api(kube_api)


@pytest.fixture
def core(kube_api: Any) -> Any:
    return CoreV1Api(kube_api)


def conditions(batch: Any, name: str) -> dict[str, tuple[str, str]]:
    status = batch.read_namespaced_job(name, NS).status
    return {c.type: (c.status, c.reason) for c in status.conditions or []}


def pods_of(core: Any, name: str) -> list[Any]:
    return list(core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items)


def finished(batch: Any, name: str) -> bool:
    found = conditions(batch, name)
    return found.get("Complete", ("",))[0] == "True" or found.get("Failed", ("",))[0] == "True"


def test_default_success(batch: Any, core: Any) -> None:
    created = batch.create_namespaced_job(NS, job("ok"))
    wait_for(lambda: finished(batch, "ok"), "job completion")
    assert conditions(batch, "ok") == {
        "SuccessCriteriaMet": ("True", "CompletionsReached"),
        "Complete": ("True", "CompletionsReached"),
    }
    status = batch.read_namespaced_job("ok", NS).status
    assert (status.succeeded, status.active, status.failed) == (1, 0, None)
    assert status.start_time is not None
    assert status.completion_time is not None
    (pod,) = pods_of(core, "ok")
    assert pod.status.phase == "Succeeded"
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("Job", "ok", True)
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    reasons = {
        e.reason
        for e in core.list_namespaced_event(NS, field_selector="involvedObject.name=ok").items
    }
    assert {"SuccessfulCreate", "Completed"} <= reasons


def test_exit_code_and_termination_message(batch: Any, core: Any) -> None:
    annotations = {
        PREFIX + "exit-code": "3",
        PREFIX + "termination-message": "boom: disk full",
        PREFIX + "duration": "50ms",
    }
    batch.create_namespaced_job(NS, job("bad", annotations, backoffLimit=1))
    wait_for(lambda: finished(batch, "bad"), "job failure")
    assert conditions(batch, "bad") == {
        "FailureTarget": ("True", "BackoffLimitExceeded"),
        "Failed": ("True", "BackoffLimitExceeded"),
    }
    assert batch.read_namespaced_job("bad", NS).status.failed == 2
    pods = pods_of(core, "bad")
    assert len(pods) == 2  # one retry after the first failure
    for pod in pods:
        assert pod.status.phase == "Failed"
        terminated = pod.status.container_statuses[0].state.terminated
        assert (terminated.exit_code, terminated.reason) == (3, "Error")
        assert terminated.message == "boom: disk full"


def test_active_deadline(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(
        NS, job("slow", {PREFIX + "duration": "60s"}, activeDeadlineSeconds=1)
    )
    wait_for(lambda: finished(batch, "slow"), "deadline")
    assert conditions(batch, "slow")["Failed"] == ("True", "DeadlineExceeded")
    wait_for(lambda: not pods_of(core, "slow"), "active pod deleted")


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_image_pull_failures_keep_pod_pending(batch: Any, core: Any, reason: str) -> None:
    batch.create_namespaced_job(NS, job("pull", {PREFIX + "fail-reason": reason}))

    def waiting() -> Any:
        pods = pods_of(core, "pull")
        statuses = pods[0].status.container_statuses if pods else None
        return statuses and statuses[0].state.waiting

    state = wait_for(waiting, "waiting container")
    assert state.reason == reason
    assert pods_of(core, "pull")[0].status.phase == "Pending"
    assert batch.read_namespaced_job("pull", NS).status.active == 1


def test_unschedulable(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(NS, job("nowhere", {PREFIX + "fail-reason": "Unschedulable"}))

    def scheduled_condition() -> Any:
        pods = pods_of(core, "nowhere")
        found = (
            [c for c in (pods[0].status.conditions or []) if c.type == "PodScheduled"]
            if pods
            else []
        )
        return found and found[0]

    condition = wait_for(scheduled_condition, "PodScheduled condition")
    assert (condition.status, condition.reason) == ("False", "Unschedulable")


def test_suspend_and_resume(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(NS, job("held", suspend=True))
    wait_for(
        lambda: conditions(batch, "held").get("Suspended") == ("True", "JobSuspended"),
        "Suspended condition",
    )
    assert pods_of(core, "held") == []
    batch.patch_namespaced_job("held", NS, {"spec": {"suspend": False}})
    wait_for(lambda: finished(batch, "held"), "completion after resume")
    assert conditions(batch, "held")["Suspended"] == ("False", "JobResumed")
    assert len(pods_of(core, "held")) == 1


def test_ttl_after_finished_deletes_job_and_pods(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(NS, job("brief", ttlSecondsAfterFinished=0))
    wait_for(lambda: is_gone(lambda: batch.read_namespaced_job("brief", NS)), "TTL deletion")
    wait_for(lambda: not pods_of(core, "brief"), "pods collected")


def test_missing_service_account_then_created(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(NS, job("nosa", pod={"serviceAccountName": "builder"}))

    def failed_create() -> Any:
        events = core.list_namespaced_event(NS, field_selector="involvedObject.name=nosa").items
        return [e for e in events if e.reason == "FailedCreate"]

    (event,) = wait_for(failed_create, "FailedCreate event")
    assert event.type == "Warning"
    assert 'serviceaccount "builder" not found' in event.message
    assert pods_of(core, "nosa") == []
    core.create_namespaced_service_account(NS, {"metadata": {"name": "builder"}})
    wait_for(lambda: finished(batch, "nosa"), "completion once the account exists")


def test_missing_secret_volume_waits(batch: Any, core: Any) -> None:
    volumes = [{"name": "creds", "secret": {"secretName": "later"}}]
    batch.create_namespaced_job(NS, job("vol", pod={"volumes": volumes}))

    def creating() -> Any:
        pods = pods_of(core, "vol")
        statuses = pods[0].status.container_statuses if pods else None
        return statuses and statuses[0].state.waiting

    assert wait_for(creating, "ContainerCreating").reason == "ContainerCreating"
    core.create_namespaced_secret(NS, {"metadata": {"name": "later"}})
    wait_for(lambda: finished(batch, "vol"), "completion once the Secret exists")
    assert "Complete" in conditions(batch, "vol")


def test_bare_pod_and_log(core: Any) -> None:
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "once", "annotations": {PREFIX + "log": "hello\n"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]},
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod("once", NS).status.phase == "Succeeded", "bare pod success"
    )
    assert core.read_namespaced_pod_log("once", NS) == "hello\n"


@pytest.mark.parametrize(
    ("policy", "secret_survives"),
    [("Background", False), ("Foreground", False), ("Orphan", True), (None, True)],
)
def test_garbage_collection(
    batch: Any, core: Any, policy: str | None, secret_survives: bool
) -> None:
    created = batch.create_namespaced_job(NS, job("owner", {PREFIX + "duration": "60s"}))
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "owner",
        "uid": created.metadata.uid,
        "controller": False,
        "blockOwnerDeletion": True,
    }
    core.create_namespaced_secret(NS, {"metadata": {"name": "owned", "ownerReferences": [owner]}})
    wait_for(lambda: pods_of(core, "owner"), "pod")
    if policy is None:  # batch/v1 Jobs orphan their dependents unless the client says otherwise
        batch.delete_namespaced_job("owner", NS)
    else:
        batch.delete_namespaced_job("owner", NS, propagation_policy=policy)
    wait_for(lambda: is_gone(lambda: batch.read_namespaced_job("owner", NS)), "job deletion")
    if secret_survives:
        secret = core.read_namespaced_secret("owned", NS)
        assert not secret.metadata.owner_references
        assert pods_of(core, "owner")
    else:
        wait_for(lambda: is_gone(lambda: core.read_namespaced_secret("owned", NS)), "secret GC")
        wait_for(lambda: not pods_of(core, "owner"), "pod GC")
