"""RBAC: the comparison functions (pure) and the chart's rules in both modes, against the
calls the operator makes (kopf's own and cpworker.kube's)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.integration.helm.chart import RELEASE_NAMESPACE, VALUES_MATRIX, by_kind, manifests
from tests.integration.helm.rbac import (
    ApiCall,
    Grant,
    calls_from_audit,
    grants_cover,
    grants_for,
    rule_allows,
    rules_cover,
    unused_permissions,
)

SERVICE_ACCOUNT = "cpw-cpworker"
CAW = ("cpworker.io", "customactionworkers")

# --- pure functions ------------------------------------------------------------------------

JOBS_RULE = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]}


def test_rule_allows_matching_group_resource_and_verb() -> None:
    assert rule_allows(JOBS_RULE, ApiCall("create", "batch", "jobs", namespace="ci"))
    assert not rule_allows(JOBS_RULE, ApiCall("delete", "batch", "jobs", namespace="ci"))
    assert not rule_allows(JOBS_RULE, ApiCall("create", "", "jobs", namespace="ci"))
    assert not rule_allows(JOBS_RULE, ApiCall("get", "batch", "jobs", "status", "ci"))


def test_rule_allows_wildcards_and_subresources() -> None:
    assert rule_allows(
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, ApiCall("x", "g", "r")
    )
    status = ApiCall("patch", *CAW, subresource="status", namespace="ci")
    assert rule_allows(
        {"apiGroups": ["cpworker.io"], "resources": ["*/status"], "verbs": ["patch"]}, status
    )
    assert rule_allows(
        {"apiGroups": ["cpworker.io"], "resources": ["customactionworkers/*"], "verbs": ["patch"]},
        status,
    )
    assert not rule_allows(
        {"apiGroups": ["cpworker.io"], "resources": [CAW[1]], "verbs": ["patch"]}, status
    )


def test_rule_allows_honours_resource_names() -> None:
    rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]}
    assert rule_allows(rule, ApiCall("get", "", "secrets", namespace="ci", name="a"))
    assert not rule_allows(rule, ApiCall("get", "", "secrets", namespace="ci", name="b"))
    assert not rule_allows(rule, ApiCall("get", "", "secrets", namespace="ci"))


def test_rules_cover_lists_each_uncovered_call_once() -> None:
    calls = [
        ApiCall("create", "batch", "jobs", namespace="ci"),
        ApiCall("delete", "batch", "jobs", namespace="ci"),
        ApiCall("delete", "batch", "jobs", namespace="ci"),
    ]
    assert rules_cover([JOBS_RULE], calls) == [ApiCall("delete", "batch", "jobs", namespace="ci")]
    assert rules_cover([JOBS_RULE], calls[:1]) == []
    assert rules_cover([], calls[:1]) == calls[:1]


def test_grants_cover_scopes_roles_to_their_namespace() -> None:
    grants = [Grant(rules=(JOBS_RULE,), namespace="ci")]
    in_ci = ApiCall("create", "batch", "jobs", namespace="ci")
    elsewhere = ApiCall("create", "batch", "jobs", namespace="default")
    all_namespaces = ApiCall("get", "batch", "jobs")
    assert grants_cover(grants, [in_ci, elsewhere, all_namespaces]) == sorted(
        [elsewhere, all_namespaces]
    )
    assert grants_cover([Grant(rules=(JOBS_RULE,))], [in_ci, elsewhere, all_namespaces]) == []


def test_unused_permissions_reports_grants_nobody_used() -> None:
    calls = [ApiCall("get", "batch", "jobs", namespace="ci")]
    assert unused_permissions([JOBS_RULE], calls) == [("batch", "jobs", "create")]
    assert unused_permissions(
        [{"apiGroups": ["*"], "resources": ["jobs"], "verbs": ["get"]}], calls
    ) == [("*", "jobs", "get")]


def test_calls_from_audit_reads_mappings_and_objects() -> None:
    class Record:
        verb = "patch"
        api_group = "cpworker.io"
        resource = "customactionworkers"
        subresource = "status"
        namespace = "ci"

    records: list[Any] = [
        {"verb": "list", "apiGroup": "batch", "resource": "jobs", "namespace": None},
        {"verb": "get", "apiGroup": "", "resource": "", "namespace": None},  # discovery
        Record(),
    ]
    assert calls_from_audit(records) == [
        ApiCall("list", "batch", "jobs"),
        ApiCall("patch", *CAW, subresource="status", namespace="ci"),
    ]


# --- the chart's rules against the operator's calls ----------------------------------------


def operator_calls(namespace: str, *, clusterwide: bool, peering: bool) -> list[ApiCall]:
    """The Kubernetes calls the operator makes while serving `namespace`: kopf's (watch the
    resource, index Jobs and Pods, post events, peering) and cpworker.kube's (the claim
    protocol, status, events). Kept in step with operator/cpworker/kube.py and kopf; the
    recorded audit of the e2e tests checks the same thing from the outside."""
    scope = "" if clusterwide else namespace
    calls = [
        # kopf: watch and index, cluster-wide or per served namespace
        *(ApiCall(v, *CAW, namespace=scope) for v in ("list", "watch")),
        *(ApiCall(v, "batch", "jobs", namespace=scope) for v in ("list", "watch")),
        *(ApiCall(v, "", "pods", namespace=scope) for v in ("list", "watch")),
        *(
            ApiCall(v, "apiextensions.k8s.io", "customresourcedefinitions")
            for v in ("list", "watch")
        ),
        # kopf: finalizer/annotations and status on the worker; events
        ApiCall("patch", *CAW, namespace=namespace, name="w"),
        ApiCall("patch", *CAW, subresource="status", namespace=namespace, name="w"),
        ApiCall("create", "", "events", namespace=namespace),
        # cpworker.kube: a Job's FailedCreate events
        ApiCall("list", "", "events", namespace=namespace),
        # not calls: what OwnerReferencesPermissionEnforcement checks when the Job (owned by
        # the worker) and the Secret (owned by the Job) are created with blockOwnerDeletion
        ApiCall("update", *CAW, subresource="finalizers", namespace=namespace, name="w"),
        ApiCall("update", "batch", "jobs", subresource="finalizers", namespace=namespace),
        # cpworker.kube: worker, Job + Secret of the claim protocol, pods of a Job
        ApiCall("get", *CAW, namespace=namespace, name="w"),
        *(
            ApiCall(v, "batch", "jobs", namespace=namespace, name="cpw-j")
            for v in ("get", "patch", "delete")
        ),
        ApiCall("create", "batch", "jobs", namespace=namespace),
        *(
            ApiCall(v, "", "secrets", namespace=namespace, name="cpw-j")
            for v in ("get", "patch", "delete")
        ),
        ApiCall("create", "", "secrets", namespace=namespace),
    ]
    if not clusterwide:
        calls += [ApiCall(v, "", "namespaces") for v in ("list", "watch")]
    if peering:
        plural = "clusterkopfpeerings" if clusterwide else "kopfpeerings"
        calls += [ApiCall(v, "kopf.dev", plural, namespace=scope) for v in ("list", "watch")]
        calls += [ApiCall("patch", "kopf.dev", plural, namespace=scope, name="cpworker")]
    return calls


MODES = {
    "defaults": (VALUES_MATRIX["defaults"], ["ci"], True, False),
    "namespaced": (VALUES_MATRIX["namespaced"], ["ci", "build"], False, False),
    "ha": (VALUES_MATRIX["ha"], ["ci"], True, True),
    "ha-namespaced": (VALUES_MATRIX["ha-namespaced"], ["ci"], False, True),
}


def _grants(chart: helm.Chart, values: dict[str, Any]) -> list[Grant]:
    return grants_for(manifests(chart, values), SERVICE_ACCOUNT, RELEASE_NAMESPACE)


@pytest.mark.parametrize(
    ("values", "served", "clusterwide", "peering"), MODES.values(), ids=MODES.keys()
)
def test_chart_rules_are_exactly_the_operator_calls(
    chart: helm.Chart, values: dict[str, Any], served: list[str], clusterwide: bool, peering: bool
) -> None:
    calls = [
        call
        for namespace in served
        for call in operator_calls(namespace, clusterwide=clusterwide, peering=peering)
    ]
    grants = _grants(chart, values)
    assert grants_cover(grants, calls) == []
    rules = [rule for grant in grants for rule in grant.rules]
    assert unused_permissions(rules, calls) == []


def test_namespaced_mode_grants_nothing_outside_its_namespaces(chart: helm.Chart) -> None:
    grants = _grants(chart, VALUES_MATRIX["namespaced"])
    outside = operator_calls("default", clusterwide=False, peering=False)
    forbidden = grants_cover(grants, outside)
    # Only the cluster-scoped reads kopf needs remain allowed outside the served namespaces.
    allowed = set(outside) - set(forbidden)
    assert {(c.resource, c.namespace) for c in allowed} == {
        ("customresourcedefinitions", ""),
        ("namespaces", ""),
    }
    roles = by_kind(manifests(chart, VALUES_MATRIX["namespaced"]), "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["build", "ci"]


def test_all_namespace_lists_are_allowed_only_in_cluster_wide_mode(
    chart: helm.Chart,
) -> None:
    cluster_lists = [ApiCall("list", "batch", "jobs"), ApiCall("watch", "", "pods")]
    assert grants_cover(_grants(chart, VALUES_MATRIX["defaults"]), cluster_lists) == []
    assert grants_cover(_grants(chart, VALUES_MATRIX["namespaced"]), cluster_lists) == sorted(
        cluster_lists
    )


@pytest.mark.parametrize("values", VALUES_MATRIX.values(), ids=VALUES_MATRIX.keys())
def test_secrets_are_never_listed_or_watched(chart: helm.Chart, values: dict[str, Any]) -> None:
    calls = [
        ApiCall(v, "", "secrets", namespace=ns) for v in ("list", "watch") for ns in ("ci", "")
    ]
    grants = _grants(chart, values)
    assert grants_cover(grants, calls) == sorted(calls)


def test_no_rbac_objects_when_disabled(chart: helm.Chart) -> None:
    kinds = {d["kind"] for d in manifests(chart, {"rbac": {"create": False}})}
    assert kinds.isdisjoint({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
