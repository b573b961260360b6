"""The chart's RBAC against the calls the real operator makes: the operator (kopf + cpworker)
runs a pipeline's custom action end to end against the local Kubernetes API, whose audit log
records every call; each must be allowed by the chart's rules for the same install mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from cpworker.runner import OperatorThread
from cpworker.sandbox.kube.standin import KubeStandIn
from tests.e2e.conftest import (  # the end-to-end harness: stand-ins and operator settings
    FAST_SETTINGS,
    NAMESPACE,
    Cluster,
    cluster,
    operator_env,
    worker_manifest,
)
from tests.integration.helm.chart import RELEASE_NAMESPACE, manifests
from tests.integration.helm.rbac import ApiCall, calls_from_audit, grants_cover, grants_for

__all__ = ["cluster", "operator_env"]  # fixtures from the e2e harness used below

SERVICE_ACCOUNT = "cpw-cpworker"
RESULT = {"summary": "built", "outputVariables": {"TAG": "v1"}}
# install mode -> (namespaces the operator is started with, the chart values of that mode)
MODES = {
    "namespaced": ([NAMESPACE], {"watchNamespaces": [NAMESPACE]}),
    "cluster-wide": ([], {}),
}


@dataclass(frozen=True)
class Harness:
    """The stand-ins one recorded run needs."""

    kube: KubeStandIn
    kubeconfig: Path
    cluster: Cluster
    cp_scenario: Any
    cp_client: Any

    def record_operator_calls(
        self, namespaces: list[str], kubeconfig: Path | None = None
    ) -> list[ApiCall]:
        """Run one custom action through the operator (as `kubeconfig`'s identity, default
        the admin) and answer the Kubernetes calls it made."""
        scenario = self.cp_scenario(actions=("Build",))
        annotations = {
            "sandbox.cpworker.io/duration": "200ms",
            "sandbox.cpworker.io/termination-message": json.dumps(RESULT),
        }
        self.cluster.apply(worker_manifest(scenario, annotations=annotations))
        # From here on only the operator talks to Kubernetes: the test waits on CodePipeline.
        self.kube.clear_audit()
        identity = str(kubeconfig or self.kubeconfig)
        with OperatorThread(FAST_SETTINGS, namespaces=namespaces, kubeconfig=identity):
            execution_id = scenario.start(self.cp_client)
            assert scenario.wait(self.cp_client, execution_id, timeout=60) == "Succeeded"
        return calls_from_audit(self.kube.audit())


@pytest.fixture
def harness(
    kube: KubeStandIn, kubeconfig: Path, cluster: Cluster, cp_scenario: Any, cp_client: Any
) -> Harness:
    return Harness(kube, kubeconfig, cluster, cp_scenario, cp_client)


@pytest.mark.usefixtures("operator_env")
@pytest.mark.parametrize(("namespaces", "values"), MODES.values(), ids=MODES.keys())
def test_chart_rbac_allows_every_call_the_operator_made(
    chart: helm.Chart, harness: Harness, namespaces: list[str], values: dict[str, Any]
) -> None:
    calls = harness.record_operator_calls(namespaces)
    # The run exercised the interesting part: the worker, its Job and Secret, pods, events.
    resources = {call.resource for call in calls}
    assert {"customactionworkers", "jobs", "secrets", "pods", "events"} <= resources
    grants = grants_for(manifests(chart, values), SERVICE_ACCOUNT, RELEASE_NAMESPACE)
    assert [str(call) for call in grants_cover(grants, calls)] == []


@pytest.mark.usefixtures("operator_env")
def test_the_audit_check_can_fail(chart: helm.Chart, harness: Harness) -> None:
    """A namespaced operator's calls are not all allowed by the Roles of another namespace."""
    calls = harness.record_operator_calls([NAMESPACE])
    grants = grants_for(
        manifests(chart, {"watchNamespaces": ["elsewhere"]}), SERVICE_ACCOUNT, RELEASE_NAMESPACE
    )
    uncovered = grants_cover(grants, calls)
    assert {call.resource for call in uncovered} >= {"jobs", "secrets", "customactionworkers"}
