"""Acceptance: a Job's pod started twice never leads to a second result.

Kubernetes may run a Job's program twice even with parallelism 1, completions 1 and
restartPolicy Never ("the same program may sometimes be started twice", kubernetes/website
content/en/docs/concepts/workloads/controllers/job.md, "Handling Pod and container failures"):
a pod lost with its node, evicted or deleted is replaced while `backoffLimit` allows, and with
Kubernetes' default `podReplacementPolicy: TerminatingOrFailed` the replacement would start
while the first pod still terminates (pkg/controller/job/job_controller.go), which is why the
operator sets `Failed` on every Job (a template asking for the default is refused). The local
Kubernetes models both (docs/sandbox-kubernetes.md, Fidelity). Whatever the pods do, the
CodePipeline job gets one result, from the Job's end; docs/job-contract.md says what a container
must tolerate.
"""

from __future__ import annotations

from typing import Any

import pytest

from cpworker.sandbox.kube import KubeStandIn
from tests.e2e.conftest import NAMESPACE, Stack, wait_for, worker_manifest
from tests.e2e.history import ClusterHistory, results_per_job

SCRIPT = {
    "sandbox.cpworker.io/duration": "3s",
    "sandbox.cpworker.io/stop-duration": "1s",  # terminates slowly: overlaps the replacement
    "sandbox.cpworker.io/termination-message": '{"summary": "built twice, reported once"}',
}


def lose_pod(kube: KubeStandIn, stack: Stack, pod: str, how: str) -> None:
    if how == "evicted":
        kube.evict_pod(NAMESPACE, pod)
    else:  # deleted: a drained or lost node, a user
        stack.cluster.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")


@pytest.mark.parametrize(
    ("how", "replacement"),
    # Unset in the template or set: the operator's Failed makes the replacement wait for the
    # lost pod's end.
    [("deleted", None), ("evicted", "Failed")],
)
def test_a_pod_started_twice_gives_one_result(
    stack: Stack, kube: KubeStandIn, how: str, replacement: str | None
) -> None:
    history = ClusterHistory.attach(kube)
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario, spec={"jobTemplate": _retrying(replacement)}))
    execution = scenario.start(stack.cp_client)
    [first] = wait_for(
        lambda: [
            p for p in stack.cluster.pods() if (p.get("status") or {}).get("phase") == "Running"
        ],
        what="the first pod running",
    )
    lose_pod(kube, stack, first["metadata"]["name"], how)
    wait_for(lambda: sum(len(p) for p in history.pods.values()) == 2, what="a second pod")

    assert scenario.wait(stack.cp_client, execution, timeout=60) == "Succeeded"
    [(job_name, pods)] = history.pods.items()
    assert len(pods) == 2, pods
    assert len(history.released[job_name]) == 1  # one Job, one claim
    [accepted] = results_per_job(stack.codepipeline).values()
    assert accepted == 1
    wait_for(
        lambda: all(
            (p.get("status") or {}).get("phase") in {"Succeeded", "Failed"}
            for p in stack.cluster.pods()
        ),
        what="both pods ended",
    )
    # A result only ever comes from the Job's end, however many pods ended meanwhile.
    assert results_per_job(stack.codepipeline) == {
        next(iter(results_per_job(stack.codepipeline))): 1
    }
    # The Event follows the accepted result.
    wait_for(
        lambda: [e["reason"] for e in stack.cluster.events()].count("JobSucceeded") == 1,
        what="one JobSucceeded event",
    )
    reasons = [e["reason"] for e in stack.cluster.events()]
    assert "JobFailed" not in reasons


def _retrying(replacement: str | None) -> dict[str, Any]:
    """A job template whose Job retries a lost pod once (backoffLimit defaults to 0)."""
    spec: dict[str, Any] = {
        "backoffLimit": 1,
        "template": {
            "metadata": {"annotations": SCRIPT},
            "spec": {"containers": [{"name": "build", "image": "example.com/builder:1"}]},
        },
    }
    if replacement is not None:
        spec["podReplacementPolicy"] = replacement
    return {"spec": spec}
