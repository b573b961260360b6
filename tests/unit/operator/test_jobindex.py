"""What the watch indexes keep of each body (cpworker.jobindex)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

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


@pytest.mark.parametrize(
    ("summarize", "body"),
    [(jobindex.summarize_job, job_body), (jobindex.summarize_pod, pod_body)],
)
def test_the_index_keeps_everything_but_managed_fields(
    summarize: Callable[[dict[str, Any]], Any], body: Callable[[], dict[str, Any]]
) -> None:
    watched = body()
    expected = body()
    del expected["metadata"]["managedFields"]
    assert summarize(watched).body == expected
    assert watched["metadata"]["managedFields"] == MANAGED_FIELDS  # the watched body is untouched
