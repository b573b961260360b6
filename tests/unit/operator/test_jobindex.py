"""What the watch indexes keep of each body (cpworker.jobindex)."""

from __future__ import annotations

import copy
from typing import Any

from cpworker import jobindex, names

MANAGED_FIELDS = [
    {"manager": "cpworker", "operation": "Update", "fieldsV1": {"f:metadata": {"f:labels": {}}}},
    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"},
]


def job_body() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "cpw-1",
            "namespace": "ci",
            "uid": "u-1",
            "labels": names.job_labels("builds", "1"),
            "annotations": {names.ANNOTATION_PHASE: "running"},
            "managedFields": copy.deepcopy(MANAGED_FIELDS),
        },
        "spec": {"suspend": False, "template": {"spec": {"containers": [{"name": "main"}]}}},
        "status": {"active": 1},
    }


def pod_body() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "cpw-1-abcde",
            "namespace": "ci",
            "uid": "p-1",
            "ownerReferences": [{"kind": "Job", "name": "cpw-1", "uid": "u-1", "controller": True}],
            "managedFields": copy.deepcopy(MANAGED_FIELDS),
        },
        "status": {"phase": "Running"},
    }


def test_the_job_index_keeps_everything_but_managed_fields() -> None:
    body = job_body()
    stored = jobindex.summarize_job(body).body
    assert "managedFields" not in stored["metadata"]
    expected = job_body()
    del expected["metadata"]["managedFields"]
    assert stored == expected
    assert body["metadata"]["managedFields"] == MANAGED_FIELDS  # the watched body is untouched


def test_the_pod_index_keeps_everything_but_managed_fields() -> None:
    stored = jobindex.summarize_pod(pod_body()).body
    expected = pod_body()
    del expected["metadata"]["managedFields"]
    assert stored == expected
