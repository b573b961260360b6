"""`helm install` / `upgrade` / `uninstall` of the chart with the real Helm v4 engine into the
local Kubernetes API: the operator's Deployment, RBAC and CRDs are created, the CRD serves
CustomActionWorkers, and `crds.keep` keeps the CRD on uninstall."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes
import pytest
import yaml

from cpworker.sandbox.kube.standin import KubeStandIn
from tests.integration.helm.chart import CHART_DIR, RELEASE, RELEASE_NAMESPACE, sync_crds

WORKER = (
    CHART_DIR.parent
    / "argocd/resource_customizations/cpworker.io/CustomActionWorker/testdata/healthy.yaml"
)
CRD_NAME = "customactionworkers.cpworker.io"
FULLNAME = f"{RELEASE}-cpworker"
_new_client: Any = kubernetes.config.new_client_from_config


class Cluster:
    """A fresh local Kubernetes API (no CRDs preloaded: the chart installs them), with Helm
    and the kubernetes client pointed at it."""

    def __init__(self, kube: KubeStandIn, kubeconfig: Path) -> None:
        self.kube = kube
        self.helm = helm.Config(kubeconfig_path=kubeconfig, namespace=RELEASE_NAMESPACE)
        self.client: Any = _new_client(str(kubeconfig))
        self.apps: Any = kubernetes.client.AppsV1Api(self.client)
        self.core: Any = kubernetes.client.CoreV1Api(self.client)
        self.rbac: Any = kubernetes.client.RbacAuthorizationV1Api(self.client)
        self.crds: Any = kubernetes.client.ApiextensionsV1Api(self.client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.client)

    def close(self) -> None:
        self.helm.close()
        self.client.close()

    def install(self, values: dict[str, Any]) -> dict[str, Any]:
        release: dict[str, Any] = self.helm.install(
            CHART_DIR, RELEASE, values, namespace=RELEASE_NAMESPACE, create_namespace=True
        )
        return release

    def exists(self, read: Any, *args: str) -> bool:
        try:
            read(*args)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def deployment(self) -> dict[str, Any]:
        body = self.apps.read_namespaced_deployment(FULLNAME, RELEASE_NAMESPACE)
        result: dict[str, Any] = self.client.sanitize_for_serialization(body)
        return result


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with KubeStandIn(job_runner=False) as kube:
        kube.apply_manifests(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ci"}}]
        )
        handle = Cluster(kube, kube.write_kubeconfig(tmp_path / "kubeconfig"))
        try:
            yield handle
        finally:
            handle.close()


def test_install_creates_operator_rbac_and_a_working_crd(cluster: Cluster) -> None:
    release = cluster.install({})
    assert release["status"] == "deployed"
    assert cluster.helm.status(RELEASE)["status"] == "deployed"

    args = cluster.deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["run", "--all-namespaces", "--standalone"]
    assert cluster.exists(cluster.core.read_namespaced_service_account, FULLNAME, RELEASE_NAMESPACE)
    assert cluster.exists(cluster.rbac.read_cluster_role, FULLNAME)
    assert cluster.exists(cluster.rbac.read_cluster_role_binding, FULLNAME)
    crd = cluster.crds.read_custom_resource_definition(CRD_NAME)
    assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"

    # The installed CRD serves workers: the one Argo CD's health check calls Healthy.
    worker = yaml.safe_load(WORKER.read_text(encoding="utf-8"))
    worker.pop("status")
    worker["metadata"].pop("generation")
    cluster.custom.create_namespaced_custom_object(
        "cpworker.io", "v1alpha1", "ci", "customactionworkers", worker
    )
    stored = cluster.custom.get_namespaced_custom_object(
        "cpworker.io", "v1alpha1", "ci", "customactionworkers", "gpu-builds"
    )
    assert stored["spec"]["queryParam"] == {"Pool": "gpu-a100"}


def test_namespaced_ha_install(cluster: Cluster) -> None:
    cluster.install({"watchNamespaces": ["ci"], "replicaCount": 2, "peering": {"enabled": True}})
    deployment = cluster.deployment()
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=ci" in args
    assert "--peering=cpworker" in args
    assert cluster.exists(cluster.rbac.read_namespaced_role, FULLNAME, "ci")
    assert cluster.exists(cluster.rbac.read_namespaced_role_binding, FULLNAME, "ci")
    assert cluster.exists(cluster.crds.read_custom_resource_definition, "kopfpeerings.kopf.dev")
    # The post-install hook created the peering object once its CRD existed.
    peering = cluster.custom.get_namespaced_custom_object(
        "kopf.dev", "v1", "ci", "kopfpeerings", "cpworker"
    )
    assert peering["metadata"]["name"] == "cpworker"


def test_upgrade_then_uninstall_keeps_the_crd(cluster: Cluster) -> None:
    cluster.install({})
    cluster.helm.upgrade(
        CHART_DIR, RELEASE, {"logging": {"level": "DEBUG"}}, namespace=RELEASE_NAMESPACE
    )
    env = cluster.deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CPWORKER_LOG_LEVEL", "value": "DEBUG"} in env
    assert cluster.helm.status(RELEASE)["revision"] == 2

    cluster.helm.uninstall(RELEASE)
    assert not cluster.exists(cluster.apps.read_namespaced_deployment, FULLNAME, RELEASE_NAMESPACE)
    assert not cluster.exists(cluster.rbac.read_cluster_role, FULLNAME)
    assert cluster.exists(cluster.crds.read_custom_resource_definition, CRD_NAME)


def test_uninstall_without_keep_deletes_the_crd(cluster: Cluster) -> None:
    cluster.install({"crds": {"keep": False}})
    cluster.helm.uninstall(RELEASE)
    assert not cluster.exists(cluster.crds.read_custom_resource_definition, CRD_NAME)


def test_upgrade_upgrades_the_crd(cluster: Cluster, tmp_path: Path) -> None:
    """Why the CRD is a template: `helm upgrade` carries a changed CRD to the cluster (a
    chart's `crds/` directory would be left at its first-installed version)."""
    cluster.install({})
    crds = tmp_path / "crds"
    crds.mkdir()
    for source in sorted((CHART_DIR.parents[1] / "crds").glob("*.yaml")):
        crd = yaml.safe_load(source.read_text(encoding="utf-8"))
        crd["spec"]["names"]["shortNames"] = [*crd["spec"]["names"].get("shortNames", []), "cawx"]
        (crds / source.name).write_text(yaml.safe_dump(crd), encoding="utf-8")
    next_chart = tmp_path / "cpworker"
    shutil.copytree(CHART_DIR, next_chart)
    template = next_chart / "templates" / "crds.yaml"
    assert sync_crds.main(["--crds", str(crds), "--template", str(template)]) == 0

    cluster.helm.upgrade(next_chart, RELEASE, {}, namespace=RELEASE_NAMESPACE)
    names = cluster.crds.read_custom_resource_definition(CRD_NAME).spec.names
    assert "cawx" in names.short_names
