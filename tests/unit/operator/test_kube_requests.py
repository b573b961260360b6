"""cpworker.kube: how a request is named in RBAC terms and which outcome it had."""

from __future__ import annotations

import pytest

from cpworker import kube


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("POST", "/apis/batch/v1/namespaces/ci/jobs", None, ("create", "jobs")),
        ("GET", "/apis/batch/v1/namespaces/ci/jobs/cpw-1", None, ("get", "jobs")),
        ("GET", "/apis/batch/v1/jobs", {"labelSelector": "a=b"}, ("list", "jobs")),
        ("GET", "/api/v1/namespaces/ci/pods", {"watch": "true"}, ("watch", "pods")),
        ("PATCH", "/api/v1/namespaces/ci/secrets/cpw-1", None, ("patch", "secrets")),
        ("DELETE", "/apis/batch/v1/namespaces/ci/jobs/cpw-1", None, ("delete", "jobs")),
        ("DELETE", "/api/v1/namespaces/ci/pods", None, ("deletecollection", "pods")),
        ("POST", "/api/v1/namespaces/ci/events", None, ("create", "events")),
        (
            "PATCH",
            "/apis/cpworker.io/v1alpha1/namespaces/ci/customactionworkers/w/status",
            None,
            ("patch", "customactionworkers/status"),
        ),
        ("GET", "/api/v1/namespaces/ci", None, ("get", "namespaces")),
        ("PUT", "/api/v1/namespaces/ci/finalize", None, ("update", "namespaces/finalize")),
        ("GET", "/api/v1/namespaces", None, ("list", "namespaces")),
        ("GET", "/version", None, ("get", "nonresource")),
        ("GET", "/apis", None, ("get", "nonresource")),
    ],
)
def test_rbac_attributes(
    method: str, path: str, query: dict[str, str] | None, expected: tuple[str, str]
) -> None:
    assert kube.rbac_attributes(method, path, query) == expected


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, kube.RequestOutcome.OK),
        (kube.NotFoundError("GET", "/x", 404, "NotFound", ""), kube.RequestOutcome.NOT_FOUND),
        (kube.AlreadyExistsError("POST", "/x", 409, "AlreadyExists", ""), "conflict"),
        (kube.ConflictError("PATCH", "/x", 409, "Conflict", ""), "conflict"),
        (kube.RetryableKubeError("GET", "/x", 429, "TooManyRequests", ""), "throttled"),
        (kube.RetryableKubeError("GET", "/x", 503, "ServiceUnavailable", ""), "error"),
        (kube.KubeError("POST", "/x", 422, "Invalid", ""), "error"),
        (OSError("connection refused"), "error"),
    ],
)
def test_outcome_of(error: BaseException | None, outcome: str) -> None:
    assert kube.outcome_of(error) == outcome
