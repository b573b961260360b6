"""The operator runs as the chart's ServiceAccount under the chart's RBAC, enforced: the chart
is `helm install`ed into the local Kubernetes API (which enforces RBAC for service-account
tokens), the operator is started with that account's token, and a pipeline's custom action
runs to Succeeded without a single 403 — with OwnerReferencesPermissionEnforcement on, as in
OpenShift (owner references that block deletion need `update` on the owner's finalizers)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes
import pytest

from cpworker.sandbox.kube.admission import AdmissionConfig
from cpworker.sandbox.kube.standin import KubeStandIn
from tests.e2e.conftest import NAMESPACE, cluster, operator_env
from tests.integration.helm.chart import CHART_DIR, RELEASE, RELEASE_NAMESPACE
from tests.integration.helm.test_rbac_audit import Harness, harness

__all__ = ["cluster", "harness", "operator_env"]  # fixtures used below

SERVICE_ACCOUNT = f"{RELEASE}-cpworker"
USER = f"system:serviceaccount:{RELEASE_NAMESPACE}:{SERVICE_ACCOUNT}"
_new_client: Any = kubernetes.config.new_client_from_config
MODES = {
    "namespaced": ([NAMESPACE], {"watchNamespaces": [NAMESPACE]}),
    "cluster-wide": ([], {}),
}


def _install(harness: Harness, values: dict[str, Any]) -> None:
    # The stand-in already serves the project's CRD (loaded by the `kube` fixture).
    with helm.Config(kubeconfig_path=harness.kubeconfig, namespace=RELEASE_NAMESPACE) as config:
        config.install(
            CHART_DIR,
            RELEASE,
            {**values, "crds": {"enabled": False}},
            namespace=RELEASE_NAMESPACE,
            create_namespace=True,
        )


def _forbidden(kube: KubeStandIn) -> list[str]:
    return sorted(
        {
            f"{r.verb} {r.apiGroup or 'core'}/{r.resource} {r.namespace or '(cluster)'}"
            for r in kube.audit()
            if r.user == USER and r.code == 403
        }
    )


@pytest.mark.kube_standin(admission=AdmissionConfig(owner_references_permission_enforcement=True))
@pytest.mark.usefixtures("operator_env")
@pytest.mark.parametrize(("namespaces", "values"), MODES.values(), ids=MODES.keys())
def test_operator_succeeds_with_exactly_the_chart_permissions(
    harness: Harness, namespaces: list[str], values: dict[str, Any]
) -> None:
    _install(harness, values)
    token = harness.kube.service_account_token(RELEASE_NAMESPACE, SERVICE_ACCOUNT)
    as_operator = harness.kube.write_kubeconfig(harness.kubeconfig.with_name("sa"), token=token)
    calls = harness.record_operator_calls(namespaces, kubeconfig=as_operator)
    assert calls, "the operator made no Kubernetes calls"
    # It really ran as the chart's account (not as the admin of $KUBECONFIG)...
    assert {record.user for record in harness.kube.audit()} == {USER}
    # ...and was never refused.
    assert _forbidden(harness.kube) == []


@pytest.mark.usefixtures("operator_env")
def test_enforcement_bites_outside_the_served_namespaces(harness: Harness) -> None:
    """The check can fail: with the chart's Roles in another namespace, the operator's
    account is refused here, and the refusal shows in the audit."""
    harness.kube.apply_manifests(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}}]
    )
    _install(harness, {"watchNamespaces": ["elsewhere"]})
    token = harness.kube.service_account_token(RELEASE_NAMESPACE, SERVICE_ACCOUNT)
    as_operator = harness.kube.write_kubeconfig(harness.kubeconfig.with_name("sa"), token=token)
    client: Any = _new_client(str(as_operator))
    try:
        batch: Any = kubernetes.client.BatchV1Api(client)
        with pytest.raises(kubernetes.client.ApiException) as refused:
            batch.list_namespaced_job(NAMESPACE)
        assert refused.value.status == 403
        batch.list_namespaced_job("elsewhere")  # allowed: the chart's Role is there
    finally:
        client.close()
    assert _forbidden(harness.kube) == [f"list batch/jobs {NAMESPACE}"]
