"""What a real kubelet does that the stand-in models (issue 13), seen through the kubernetes
client: termination-message cuts, runAsNonRoot, evictions, pod-level rejections, classic and
native sidecars."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import BatchV1Api, CoreV1Api

from tests.integration.kube.helpers import conditions_of, job_body, wait_for

NS = "default"
PREFIX = "sandbox.cpworker.io/"


@pytest.fixture
def batch(kube_api: Any) -> Any:
    return BatchV1Api(kube_api)


@pytest.fixture
def core(kube_api: Any) -> Any:
    return CoreV1Api(kube_api)


def pods_of(core: Any, name: str) -> list[Any]:
    return list(core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items)


def finished_pod(core: Any, name: str) -> Any:
    pods = [p for p in pods_of(core, name) if p.status.phase in {"Succeeded", "Failed"}]
    return pods[0] if pods else None


def job_finished(batch: Any, name: str) -> bool:
    found = conditions_of(batch.read_namespaced_job(name, NS))
    return found.get("Complete") == "True" or found.get("Failed") == "True"


# -- termination messages ---------------------------------------------------------------------
def test_termination_message_keeps_the_last_4096_bytes_of_the_file(batch: Any, core: Any) -> None:
    report = "HEAD" + "x" * 6000 + "TAIL"
    batch.create_namespaced_job(
        NS, job_body("big", {PREFIX + "termination-message": report}, backoffLimit=0)
    )
    pod = wait_for(lambda: finished_pod(core, "big"), "the pod to finish")
    message = pod.status.container_statuses[0].state.terminated.message
    assert len(message.encode()) == 4096
    assert message == report[-4096:]  # the end kept: a JSON report no longer starts with {


def test_status_manager_keeps_the_first_12_kib_split_over_all_containers(
    batch: Any, core: Any
) -> None:
    """Four containers (one init): 3072 bytes each — the first ones of the 4096-byte tail."""
    report = "".join(f"{i:05d}|" for i in range(1200))  # 7200 bytes, every offset distinct
    containers = [{"name": n, "image": "busybox:1"} for n in ("a", "b", "c")]
    pod = {"containers": containers, "initContainers": [{"name": "init", "image": "busybox:1"}]}
    batch.create_namespaced_job(
        NS, job_body("split", {PREFIX + "termination-message": report}, pod=pod)
    )
    finished = wait_for(lambda: finished_pod(core, "split"), "the pod to finish")
    for status in finished.status.container_statuses + finished.status.init_container_statuses:
        assert status.state.terminated.message == report[-4096:][:3072]


def test_fallback_to_logs_on_error_keeps_80_lines_at_most_2048_bytes(batch: Any, core: Any) -> None:
    log = "".join(f"line {i:03d} {'.' * 20}\n" for i in range(200))  # 30 bytes a line
    container = {
        "name": "main",
        "image": "busybox:1",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    annotations = {PREFIX + "log": log, PREFIX + "exit-code": "2"}
    batch.create_namespaced_job(
        NS, job_body("tail", annotations, backoffLimit=0, pod={"containers": [container]})
    )
    pod = wait_for(lambda: finished_pod(core, "tail"), "the pod to fail")
    message = pod.status.container_statuses[0].state.terminated.message
    last_80 = "".join(log.splitlines(keepends=True)[-80:])  # 2400 bytes
    assert message == last_80[-2048:]
    assert message.endswith("line 199 ....................\n")


# -- runAsNonRoot ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("user", "context", "expected"),
    [
        ("0", {"runAsNonRoot": True}, "container has runAsNonRoot and image will run as root"),
        (
            "nobody",
            {"runAsNonRoot": True},
            (
                "container has runAsNonRoot and image has non-numeric user (nobody), cannot "
                "verify user is non-root"
            ),
        ),
        ("1000", {"runAsNonRoot": True, "runAsUser": 0}, "container's runAsUser breaks non-root"),
    ],
)
def test_run_as_non_root_with_a_root_image_waits_with_create_container_config_error(
    batch: Any, core: Any, user: str, context: dict[str, Any], expected: str
) -> None:
    annotations = {PREFIX + "image-user": user}
    batch.create_namespaced_job(
        NS, job_body("nonroot", annotations, pod={"securityContext": context})
    )

    def waiting() -> Any:
        pods = pods_of(core, "nonroot")
        statuses = (pods[0].status.container_statuses or []) if pods else []
        return statuses and statuses[0].state.waiting

    state = wait_for(waiting, "the container to wait")
    if state.reason != "CreateContainerConfigError":  # ContainerCreating first
        state = wait_for(
            lambda: (w := waiting()) and w.reason == "CreateContainerConfigError" and w,
            "CreateContainerConfigError",
        )
    (pod,) = pods_of(core, "nonroot")
    assert state.message.startswith(expected)
    assert (
        f'(pod: "{pod.metadata.name}_{NS}({pod.metadata.uid})", container: main)' in state.message
    )
    assert pod.status.phase == "Pending"
    events = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pod.metadata.name}"
    )
    assert any(
        e.reason == "Failed" and e.message == f"Error: {state.message}" for e in events.items
    )


def test_run_as_non_root_with_a_non_root_image_runs(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(
        NS,
        job_body(
            "fine",
            {PREFIX + "image-user": "1000:1000"},
            pod={"securityContext": {"runAsNonRoot": True}},
        ),
    )
    wait_for(lambda: job_finished(batch, "fine"), "the Job to finish")
    assert conditions_of(batch.read_namespaced_job("fine", NS))["Complete"] == "True"


# -- evictions and pod replacement ----------------------------------------------------------
def _evict(core: Any, name: str) -> None:
    core.create_namespaced_pod_eviction(
        name, NS, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    )


@pytest.mark.parametrize("policy", ["TerminatingOrFailed", "Failed"])
def test_eviction_api_and_pod_replacement_policy(batch: Any, core: Any, policy: str) -> None:
    """The default policy starts the replacement while the evicted pod still terminates (two
    pods of one Job at once); `Failed` waits until it has failed."""
    annotations = {PREFIX + "duration": "60s", PREFIX + "stop-duration": "1s"}
    batch.create_namespaced_job(
        NS, job_body("evicted", annotations, backoffLimit=2, podReplacementPolicy=policy)
    )
    first = wait_for(
        lambda: [p for p in pods_of(core, "evicted") if p.status.phase == "Running"], "running pod"
    )[0]
    _evict(core, first.metadata.name)
    old = core.read_namespaced_pod(first.metadata.name, NS)
    assert old.metadata.deletion_timestamp is not None
    (target,) = [c for c in old.status.conditions if c.type == "DisruptionTarget"]
    assert (target.status, target.reason) == ("True", "EvictionByEvictionAPI")
    seen_overlap = False

    def replaced() -> Any:
        nonlocal seen_overlap
        pods = pods_of(core, "evicted")
        others = [p for p in pods if p.metadata.name != first.metadata.name]
        old_left = [p for p in pods if p.metadata.name == first.metadata.name]
        if others and old_left and old_left[0].status.phase == "Running":
            seen_overlap = True
        return others and not old_left and others

    wait_for(replaced, "a replacement pod and the evicted pod gone")
    assert seen_overlap is (policy == "TerminatingOrFailed")
    assert batch.read_namespaced_job("evicted", NS).status.failed == 1


def test_evicted_pod_status(batch: Any, core: Any, kube: Any) -> None:
    batch.create_namespaced_job(
        NS, job_body("pressure", {PREFIX + "duration": "60s"}, backoffLimit=0)
    )
    pod = wait_for(
        lambda: [p for p in pods_of(core, "pressure") if p.status.phase == "Running"], "running"
    )[0]
    kube.evict_pod(NS, pod.metadata.name)
    evicted = wait_for(lambda: finished_pod(core, "pressure"), "the eviction")
    assert (evicted.status.phase, evicted.status.reason) == ("Failed", "Evicted")
    assert evicted.status.message.startswith("The node was low on resource: memory.")
    (target,) = [c for c in evicted.status.conditions if c.type == "DisruptionTarget"]
    assert (target.status, target.reason) == ("True", "TerminationByKubelet")
    terminated = evicted.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("ContainerStatusUnknown", 137)
    wait_for(lambda: job_finished(batch, "pressure"), "the Job to fail")
    assert core.read_namespaced_pod(pod.metadata.name, NS).metadata.deletion_timestamp is None


def test_out_of_cpu_rejection_has_no_container_status(batch: Any, core: Any) -> None:
    batch.create_namespaced_job(
        NS, job_body("greedy", {PREFIX + "fail-reason": "OutOfcpu"}, backoffLimit=0)
    )
    pod = wait_for(lambda: finished_pod(core, "greedy"), "the rejection")
    assert (pod.status.phase, pod.status.reason) == ("Failed", "OutOfcpu")
    assert pod.status.message.startswith("Pod was rejected: Node didn't have enough resource: cpu")
    assert not pod.status.container_statuses
    wait_for(lambda: job_finished(batch, "greedy"), "the Job to fail")
    assert conditions_of(batch.read_namespaced_job("greedy", NS))["Failed"] == "True"


# -- sidecars ---------------------------------------------------------------------------------
def test_classic_sidecar_keeps_the_pod_running_until_the_deadline(batch: Any, core: Any) -> None:
    containers = [
        {"name": "main", "image": "busybox:1"},
        {"name": "istio-proxy", "image": "istio/proxyv2:1.22"},
    ]
    annotations = {PREFIX + "duration.main": "100ms", PREFIX + "duration.istio-proxy": "never"}
    batch.create_namespaced_job(
        NS,
        job_body("meshed", annotations, activeDeadlineSeconds=2, pod={"containers": containers}),
    )

    def main_done_proxy_running() -> Any:
        pods = pods_of(core, "meshed")
        if not pods or not pods[0].status.container_statuses:
            return None
        states = {s.name: s.state for s in pods[0].status.container_statuses}
        return states["main"].terminated and states["istio-proxy"].running and pods[0]

    pod = wait_for(main_done_proxy_running, "main exited, proxy still running")
    assert pod.status.phase == "Running"
    wait_for(lambda: job_finished(batch, "meshed"), "the deadline")
    job = batch.read_namespaced_job("meshed", NS)
    assert {c.type: c.reason for c in job.status.conditions}["Failed"] == "DeadlineExceeded"


@pytest.mark.parametrize(("stop", "exit_code"), [("200ms", 143), ("30s", 137)])
def test_native_sidecar_is_stopped_after_the_main_container(
    batch: Any, core: Any, stop: str, exit_code: int
) -> None:
    """SIGTERM after the main container exits; SIGKILL when the grace period runs out; the
    pod Succeeded by its main container alone, only once the sidecar has stopped."""
    sidecar = {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}
    annotations = {
        PREFIX + "duration.main": "300ms",
        PREFIX + "duration.proxy": "never",
        PREFIX + "stop-duration.proxy": stop,
        PREFIX + "termination-message.proxy": "proxy drained",
    }
    pod_spec = {"initContainers": [sidecar], "terminationGracePeriodSeconds": 1}
    batch.create_namespaced_job(NS, job_body("native", annotations, pod=pod_spec))
    phases_with_main_done: set[str] = set()

    def done() -> Any:
        pods = pods_of(core, "native")
        if not pods or not pods[0].status.container_statuses:
            return None
        pod = pods[0]
        main = pod.status.container_statuses[0].state
        proxy = pod.status.init_container_statuses[0].state
        if main.terminated and proxy.running:
            phases_with_main_done.add(pod.status.phase)
        return pod.status.phase in {"Succeeded", "Failed"} and pod

    pod = wait_for(done, "the pod to finish")
    assert pod.status.phase == "Succeeded"
    proxy = pod.status.init_container_statuses[0].state.terminated
    assert (proxy.exit_code, proxy.message) == (exit_code, "proxy drained")
    assert phases_with_main_done == {"Running"}  # Running while the sidecar stops
    wait_for(lambda: job_finished(batch, "native"), "the Job")
    assert conditions_of(batch.read_namespaced_job("native", NS))["Complete"] == "True"


def test_a_sidecar_that_handles_sigterm_exits_with_its_own_code(batch: Any, core: Any) -> None:
    sidecar = {"name": "shipper", "image": "shipper:1", "restartPolicy": "Always"}
    annotations = {
        PREFIX + "duration.main": "100ms",
        PREFIX + "duration.shipper": "never",
        PREFIX + "stop-duration.shipper": "100ms",
        PREFIX + "sigterm-exit-code.shipper": "0",
    }
    batch.create_namespaced_job(
        NS, job_body("handles-term", annotations, pod={"initContainers": [sidecar]})
    )
    pod = wait_for(
        lambda: next(
            (p for p in pods_of(core, "handles-term") if p.status.phase == "Succeeded"), None
        ),
        "the pod to finish",
    )
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0


@pytest.mark.kube_standin(
    runner={
        "image_scripts": {
            "known.example/helper:1": {
                "duration.fetch": "50ms",
                "duration.sidecar": "never",
                "sigterm-exit-code.sidecar": "0",
            }
        }
    }
)
def test_a_known_images_containers_follow_its_script_not_the_pod_wide_annotations(
    batch: Any, core: Any
) -> None:
    """The pod-wide annotations script the template's own program (it fails with 3); the known
    image's containers run their own script; a container-specific annotation still wins."""
    annotations = {
        PREFIX + "duration": "200ms",
        PREFIX + "exit-code": "3",
        PREFIX + "termination-message": "the build failed",
        PREFIX + "termination-message.sidecar": "scripted for this container",
    }
    pod_spec = {
        "initContainers": [
            {"name": "sidecar", "image": "known.example/helper:1", "restartPolicy": "Always"},
            {"name": "fetch", "image": "known.example/helper:1"},
        ]
    }
    batch.create_namespaced_job(NS, job_body("known-image", annotations, pod=pod_spec))
    pod = wait_for(
        lambda: next(
            (p for p in pods_of(core, "known-image") if p.status.phase in {"Succeeded", "Failed"}),
            None,
        ),
        "the pod to finish",
    )
    assert pod.status.phase == "Failed"
    init = {s.name: s.state.terminated for s in pod.status.init_container_statuses}
    assert (init["fetch"].exit_code, init["fetch"].message) == (0, None)
    assert init["sidecar"].exit_code == 0
    assert init["sidecar"].message == "scripted for this container"
    main = pod.status.container_statuses[0].state.terminated
    assert (main.exit_code, main.message) == (3, "the build failed")
