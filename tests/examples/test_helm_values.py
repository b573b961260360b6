"""examples/helm/values-namespaced.yaml through the real Helm engine: a namespaced install.

The values pass the chart's schema, the operator serves only `ci`, and every permission it
gets is in `ci` except the two cluster-wide reads kopf needs (CRDs, namespaces).
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.examples.conftest import HELM_VALUES, NAMESPACE
from tests.integration.helm.chart import by_kind, manifests, one, operator_container


def test_the_values_pass_the_charts_schema(chart: Any) -> None:
    chart.validate_schema(yaml.safe_load(HELM_VALUES.read_text()))


def test_the_operator_serves_only_the_listed_namespace(chart: Any) -> None:
    documents = manifests(chart, yaml.safe_load(HELM_VALUES.read_text()))
    container = operator_container(documents)
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        f"--namespace={NAMESPACE}"
    ]
    assert "--all-namespaces" not in container["args"]
    assert container["image"] == "registry.example.com/platform/cpworker:0.1.0"
    roles = by_kind(documents, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {NAMESPACE}
    assert {b["metadata"]["namespace"] for b in by_kind(documents, "RoleBinding")} == {NAMESPACE}
    # Cluster-wide: only what kopf reads to discover resources and served namespaces.
    cluster_role = one(documents, "ClusterRole")
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert resources == {"customresourcedefinitions", "namespaces"}
    verbs = {v for rule in cluster_role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
