"""The Job controller, TTL controller, Job validation and garbage collector as a real cluster
runs them (issue 13): two-step terminal conditions, TTL from the finish time with Foreground
and a UID precondition, what a suspended Job's template may change, a collector that takes
its time and collects a dependent whose owner was replaced."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch as _watch
from kubernetes.client import ApiException
from kubernetes.client import BatchV1Api as _BatchV1Api
from kubernetes.client import CoreV1Api as _CoreV1Api

from tests.integration.kube.helpers import (
    conditions_of,
    custom_kube,
    is_gone,
    job_body,
    wait_for,
)

# the kubernetes package's types are partial: one untyped door in
watch: Any = _watch
BatchV1Api: Any = _BatchV1Api
CoreV1Api: Any = _CoreV1Api
NS = "default"
PREFIX = "sandbox.cpworker.io/"


class JobHistory:
    """Every state of one Job a watch delivers, in order (conditions True and pod counts)."""

    def __init__(self, client: Any, name: str) -> None:
        self.states: list[tuple[frozenset[str], int]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(client, name), daemon=True)
        self._thread.start()

    def _run(self, client: Any, name: str) -> None:
        for event in self._watch.stream(
            BatchV1Api(client).list_namespaced_job,
            NS,
            field_selector=f"metadata.name={name}",
            timeout_seconds=60,
        ):
            job = event["object"]
            true = frozenset(k for k, v in conditions_of(job).items() if v == "True")
            status = job.status
            pods = ((status.active or 0) + (status.terminating or 0)) if status else 0
            self.states.append((true, pods))
            if {"Complete", "Failed"} & true:
                self._watch.stop()

    def finished(self) -> bool:
        return bool(self.states) and bool({"Complete", "Failed"} & self.states[-1][0])


@pytest.mark.parametrize(
    ("annotations", "spec", "target", "final"),
    [
        ({}, {}, "SuccessCriteriaMet", "Complete"),
        (
            {PREFIX + "duration": "60s", PREFIX + "stop-duration": "500ms"},
            {"activeDeadlineSeconds": 1},
            "FailureTarget",
            "Failed",
        ),
    ],
    ids=["success", "deadline"],
)
def test_terminal_conditions_come_in_two_steps(
    tmp_path: Path, annotations: dict[str, str], spec: dict[str, Any], target: str, final: str
) -> None:
    with custom_kube(tmp_path, runner={"terminal_condition_delay": 0.5}) as (_, client):
        history = JobHistory(client, "steps")
        BatchV1Api(client).create_namespaced_job(NS, job_body("steps", annotations, **spec))
        wait_for(history.finished, "the Job to finish")
    intermediate = [
        (true, pods) for true, pods in history.states if target in true and final not in true
    ]
    assert intermediate, f"{target} was never seen without {final}: {history.states}"
    assert history.states[-1][0] >= {target, final}
    assert history.states[-1][1] == 0  # the final condition only once no pod is left
    if final == "Failed":  # the deadline's pod was still terminating under FailureTarget
        assert any(pods for _, pods in intermediate)


def test_ttl_counts_from_the_finish_time_and_deletes_in_the_foreground(kube_api: Any) -> None:
    """A Job that finished two hours ago with a one-hour TTL goes at once."""
    batch = BatchV1Api(kube_api)
    batch.create_namespaced_job(NS, job_body("old", suspend=True, ttlSecondsAfterFinished=3600))
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    finished = {
        "type": "Complete",
        "status": "True",
        "reason": "CompletionsReached",
        "message": "Reached expected number of succeeded pods",
        "lastTransitionTime": long_ago,
        "lastProbeTime": long_ago,
    }
    batch.patch_namespaced_job_status(
        "old", NS, {"status": {"conditions": [finished], "completionTime": long_ago}}
    )
    wait_for(
        lambda: is_gone(lambda: batch.read_namespaced_job("old", NS)),
        "the TTL controller to delete the Job",
        timeout=15,
    )


def test_ttl_deletes_in_the_foreground(kube_api: Any) -> None:
    """The Job waits with the foregroundDeletion finalizer until its pod is collected."""
    batch = BatchV1Api(kube_api)
    seen: list[tuple[bool, tuple[str, ...]]] = []
    stream = watch.Watch()

    def record() -> None:
        for event in stream.stream(
            batch.list_namespaced_job, NS, field_selector="metadata.name=brief", timeout_seconds=30
        ):
            meta = event["object"].metadata
            seen.append((meta.deletion_timestamp is not None, tuple(meta.finalizers or ())))
            if event["type"] == "DELETED":
                stream.stop()

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    batch.create_namespaced_job(NS, job_body("brief", ttlSecondsAfterFinished=1))
    thread.join(timeout=30)
    assert (True, ("foregroundDeletion",)) in seen


def test_suspended_job_template_only_scheduling_labels_and_annotations_change(
    kube_api: Any,
) -> None:
    batch = BatchV1Api(kube_api)
    batch.create_namespaced_job(NS, job_body("held", suspend=True))
    batch.patch_namespaced_job(
        "held",
        NS,
        {
            "spec": {
                "template": {
                    "metadata": {"labels": {"queue": "a"}, "annotations": {"note": "x"}},
                    "spec": {"nodeSelector": {"pool": "builds"}},
                }
            }
        },
    )
    with pytest.raises(ApiException) as refused:
        batch.patch_namespaced_job(
            "held",
            NS,
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "main", "image": "other:2"}]}}
                }
            },
        )
    assert refused.value.status == 422
    assert "spec.template: Invalid value: field is immutable" in str(refused.value.body)


def test_garbage_collection_takes_its_time_and_stale_owners_are_collected(
    tmp_path: Path,
) -> None:
    with custom_kube(tmp_path, gc_delay=1.0) as (_, client):
        batch, core = BatchV1Api(client), CoreV1Api(client)
        first = batch.create_namespaced_job(NS, job_body("build", suspend=True))
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "build",
            "uid": first.metadata.uid,
            "controller": True,
        }
        core.create_namespaced_secret(
            NS, {"metadata": {"name": "creds", "ownerReferences": [owner]}}
        )
        batch.delete_namespaced_job("build", NS, propagation_policy="Background")
        wait_for(lambda: is_gone(lambda: batch.read_namespaced_job("build", NS)), "the owner gone")
        # right after its owner went, the dependent is still there...
        second = batch.create_namespaced_job(NS, job_body("build", suspend=True))
        secret = core.read_namespaced_secret("creds", NS)
        # ...with the first Job's UID: a Job of the same name does not adopt it
        assert secret.metadata.owner_references[0].uid == first.metadata.uid
        assert second.metadata.uid != first.metadata.uid
        wait_for(lambda: is_gone(lambda: core.read_namespaced_secret("creds", NS)), "GC")
        # a Secret created later, pointing at a UID that no longer exists, is collected too
        core.create_namespaced_secret(
            NS, {"metadata": {"name": "late", "ownerReferences": [owner]}}
        )
        wait_for(lambda: is_gone(lambda: core.read_namespaced_secret("late", NS)), "stale GC")
