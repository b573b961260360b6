"""Every rendered object is valid against Kubernetes' own OpenAPI schemas (strict: no unknown
fields), for the oldest Kubernetes the chart supports and the newest the validator knows."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from tests.integration.helm.chart import VALUES_MATRIX, Manifest, manifests

# Chart.yaml's kubeVersion floor, and the newest schemas the installed validator ships.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]

# Custom resources whose schema is not part of Kubernetes: checked by kind in test_render.py.
NOT_IN_KUBERNETES = {"ServiceMonitor", "PrometheusRule", "ClusterKopfPeering", "KopfPeering"}


def _validate(document: Manifest, version: str) -> None:
    kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", VALUES_MATRIX.values(), ids=VALUES_MATRIX.keys())
def test_rendered_objects_match_kubernetes_schemas(
    chart: helm.Chart, values: dict[str, Any], version: str
) -> None:
    checked = 0
    for document in manifests(chart, values):
        if document["kind"] in NOT_IN_KUBERNETES:
            continue
        _validate(document, version)
        checked += 1
    assert checked >= 4  # ServiceAccount, ClusterRole, ClusterRoleBinding, Deployment at least


def test_the_validator_rejects_a_broken_deployment(chart: helm.Chart) -> None:
    """The check above can fail: a wrong field type in a rendered Deployment is caught."""
    deployment = next(d for d in manifests(chart) if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment, KUBERNETES_VERSIONS[0])


def test_only_known_custom_kinds_skip_schema_validation(chart: helm.Chart) -> None:
    kinds = {d["kind"] for values in VALUES_MATRIX.values() for d in manifests(chart, values)}
    assert kinds & NOT_IN_KUBERNETES == NOT_IN_KUBERNETES, "the matrix must render each of them"
