"""RBAC for service-account identities: what the bindings allow passes, the rest is 403."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.pytest_plugin import Kubectl

NS = "default"
ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "job-reader", "namespace": NS},
    "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": ["allowed"],
        },
    ],
}
BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "job-reader", "namespace": NS},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "job-reader"},
    "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": NS}],
}
CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "worker-status"},
    "rules": [
        {
            "apiGroups": ["cpworker.io"],
            "resources": ["customactionworkers/status"],
            "verbs": ["patch"],
        },
        {"apiGroups": ["cpworker.io"], "resources": ["customactionworkers"], "verbs": ["list"]},
    ],
}
CLUSTER_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "worker-status"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "worker-status",
    },
    "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": NS}],
}


def test_service_account_is_held_to_its_bindings(
    kube: KubeStandIn, kubectl: Kubectl, tmp_path: Path
) -> None:
    kube.apply_manifests([ROLE, BINDING, CLUSTER_ROLE, CLUSTER_BINDING])
    kubectl("create", "secret", "generic", "allowed", "--from-literal=a=1")
    kubectl("create", "secret", "generic", "other", "--from-literal=a=1")
    token = kube.service_account_token(NS, "operator")
    config = kube.write_kubeconfig(tmp_path / "operator.kubeconfig", token=token)

    def as_operator(*args: str) -> Any:
        return kubectl("--kubeconfig", str(config), *args, check=False)

    assert as_operator("get", "jobs").returncode == 0
    assert as_operator("get", "secret", "allowed").returncode == 0
    denied = as_operator("get", "secret", "other")
    assert denied.returncode != 0
    assert (
        'User "system:serviceaccount:default:operator" cannot get resource "secrets"'
        in denied.stderr
    )
    assert as_operator("get", "secrets").returncode != 0  # list is not granted
    assert as_operator("delete", "job", "x").returncode != 0
    assert as_operator("get", "caw", "-A").returncode == 0  # cluster-wide list via the CRB
    assert as_operator("get", "jobs", "-n", "kube-system").returncode != 0  # Role is namespaced
    users = {record.user for record in kube.audit() if record.code == 403}
    assert users == {"system:serviceaccount:default:operator"}


def test_auth_can_i_and_impersonation(kube: KubeStandIn, kubectl: Kubectl, tmp_path: Path) -> None:
    kube.apply_manifests([ROLE, BINDING])
    operator = "--as=system:serviceaccount:default:operator"
    assert kubectl("auth", "can-i", "list", "jobs.batch", operator).stdout.strip() == "yes"
    refused = kubectl("auth", "can-i", "delete", "jobs.batch", operator, check=False)
    assert refused.stdout.strip() == "no"
    assert kubectl("auth", "can-i", "delete", "jobs.batch").stdout.strip() == "yes"  # admin
    assert kubectl("get", "jobs", operator).returncode == 0
    denied = kubectl("get", "secrets", operator, check=False)
    assert "cannot list resource" in denied.stderr
    # a service account cannot impersonate
    token = kube.service_account_token(NS, "operator")
    config = kube.write_kubeconfig(tmp_path / "op.kubeconfig", token=token)
    sneaky = kubectl("--kubeconfig", str(config), "get", "pods", "--as=admin", check=False)
    assert "cannot impersonate" in sneaky.stderr
