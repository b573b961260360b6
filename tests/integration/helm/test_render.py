"""The chart renders, lints and produces the objects each install mode needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.integration.helm.chart import (
    CHART_DIR,
    RELEASE_NAMESPACE,
    VALUES_MATRIX,
    Manifest,
    by_kind,
    load_documents,
    manifests,
    one,
    operator_container,
)

MATRIX = pytest.mark.parametrize("values", VALUES_MATRIX.values(), ids=VALUES_MATRIX.keys())


def _args(documents: list[Manifest]) -> list[str]:
    args: list[str] = operator_container(documents)["args"]
    return args


def _env(documents: list[Manifest]) -> dict[str, Any]:
    return {item["name"]: item.get("value") for item in operator_container(documents)["env"]}


def _peering_crd(documents: list[Manifest]) -> Manifest:
    (crd,) = [
        d
        for d in by_kind(documents, "CustomResourceDefinition")
        if d["spec"]["group"] == "kopf.dev"
    ]
    return crd


@MATRIX
def test_lint_is_clean(values: dict[str, Any]) -> None:
    report = helm.lint(CHART_DIR, values, strict=True, namespace=RELEASE_NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


@MATRIX
def test_deployment_is_hardened(chart: helm.Chart, values: dict[str, Any]) -> None:
    documents = manifests(chart, values)
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(documents)
    context = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a read-only root needs a writable /tmp"
    assert pod["automountServiceAccountToken"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "readinessProbe" not in container
    assert container["resources"]["requests"]


@MATRIX
def test_liveness_probe_targets_the_port_the_operator_listens_on(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    documents = manifests(chart, values)
    container = operator_container(documents)
    probe_port = container["livenessProbe"]["httpGet"]["port"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == probe_port)
    assert "--liveness" in _args(documents)
    assert _env(documents)["CPWORKER_HEALTH_PORT"] == str(port)
    assert _env(documents)["CPWORKER_HEALTH_HOST"] == "0.0.0.0"


def test_default_install_is_cluster_wide_and_standalone(chart: helm.Chart) -> None:
    documents = manifests(chart)
    assert _args(documents) == [
        "run",
        "--all-namespaces",
        "--standalone",
        "--liveness",
    ]
    assert operator_container(documents)["image"] == "ghcr.io/cpworker/cpworker:0.1.0"
    assert one(documents, "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    account = one(documents, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert "annotations" not in account["metadata"]
    kinds = {doc["kind"] for doc in documents}
    off_by_default = {"PodDisruptionBudget", "Service", "ServiceMonitor", "PrometheusRule"}
    assert off_by_default.isdisjoint(kinds)
    assert by_kind(documents, "ConfigMap") == []  # the Grafana dashboard


def test_namespaced_mode_passes_each_namespace(chart: helm.Chart) -> None:
    args = _args(manifests(chart, VALUES_MATRIX["namespaced"]))
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=ci",
        "--namespace=build",
    ]
    assert "--all-namespaces" not in args


def test_ha_uses_peering_and_rolling_updates(chart: helm.Chart) -> None:
    documents = manifests(chart, VALUES_MATRIX["ha"])
    deployment = one(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--peering=cpworker" in _args(documents)
    assert "--standalone" not in _args(documents)
    crd = _peering_crd(documents)
    assert crd["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"
    assert crd["spec"]["scope"] == "Cluster"
    peering = one(documents, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "cpworker"
    # A hook, so Helm creates it only after the peering CRD is registered.
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]
    assert one(documents, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_ha_namespaced_creates_a_peering_object_per_namespace(chart: helm.Chart) -> None:
    documents = manifests(chart, VALUES_MATRIX["ha-namespaced"])
    assert _peering_crd(documents)["spec"]["scope"] == "Namespaced"
    assert [p["metadata"]["namespace"] for p in by_kind(documents, "KopfPeering")] == ["ci"]
    assert by_kind(documents, "ClusterKopfPeering") == []


def test_several_replicas_without_peering_are_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match=r"replicaCount > 1 needs peering\.enabled"):
        manifests(chart, {"replicaCount": 2})


def test_irsa_annotation_and_region_reach_the_pod(chart: helm.Chart) -> None:
    documents = manifests(chart, VALUES_MATRIX["irsa"])
    account = one(documents, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cpw"
    }
    deployment = one(documents, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "cpw-cpworker"
    assert _env(documents)["CPWORKER_DEFAULT_REGION"] == "eu-west-1"


def test_existing_service_account_is_used_not_created(chart: helm.Chart) -> None:
    documents = manifests(chart, {"serviceAccount": {"create": False, "name": "ops"}})
    assert by_kind(documents, "ServiceAccount") == []
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ops"
    binding = one(documents, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops", "namespace": RELEASE_NAMESPACE}
    ]


def test_metrics_service_selects_the_operator_pod(chart: helm.Chart) -> None:
    documents = manifests(chart, VALUES_MATRIX["metrics"])
    service = one(documents, "Service")
    pod_labels = one(documents, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    target = service["spec"]["ports"][0]["targetPort"]
    assert target in {p["name"] for p in operator_container(documents)["ports"]}
    monitor = one(documents, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_every_value_reaches_the_pod(chart: helm.Chart) -> None:
    values = VALUES_MATRIX["everything-set"]
    documents = manifests(chart, values)
    pod_template = one(documents, "Deployment")["spec"]["template"]
    pod = pod_template["spec"]
    container = operator_container(documents)
    assert container["image"] == "ghcr.io/cpworker/cpworker@sha256:" + "a" * 64
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    env = _env(documents)
    assert env["CPWORKER_LOG_FORMAT"] == "text"
    assert env["CPWORKER_LOG_LEVEL"] == "DEBUG"
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3128"
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == values[key]
    assert pod_template["metadata"]["annotations"] == values["podAnnotations"]
    assert pod_template["metadata"]["labels"]["team"] == "ci"


def test_operator_is_wave_zero_for_argo_cd(chart: helm.Chart) -> None:
    annotations = one(manifests(chart), "Deployment")["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/sync-wave"] == "0"


def test_notes_name_the_mode(chart: helm.Chart) -> None:
    notes = chart.render({"watchNamespaces": ["ci"]}, name="cpw", namespace=RELEASE_NAMESPACE)[
        "cpworker/templates/NOTES.txt"
    ]
    assert "the namespaces: ci" in notes
    assert "deployment/cpw-cpworker" in notes


def test_duplicate_keys_in_rendered_yaml_are_caught() -> None:
    """The chart's YAML is read strictly, as the API server would: a repeated key fails."""
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate keys"):
        load_documents("metadata:\n  labels:\n    a: '1'\n    a: '2'\n")


def test_a_disruption_budget_that_blocks_every_drain_is_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match=r"minAvailable \(1\) must be below replicaCount"):
        manifests(chart, {"podDisruptionBudget": {"enabled": True}})
    budget = one(
        manifests(
            chart,
            {
                **VALUES_MATRIX["ha"],
                "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
            },
        ),
        "PodDisruptionBudget",
    )
    assert budget["spec"]["minAvailable"] == "50%"


def test_the_drain_guard_also_applies_to_set_values(chart: helm.Chart) -> None:
    values = helm.parse_set_string(
        "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=2"
    )
    with pytest.raises(helm.HelmError, match="must be below replicaCount"):
        manifests(chart, {**VALUES_MATRIX["ha"], **values})


def test_names_stay_valid_for_long_release_names(chart: helm.Chart) -> None:
    release = "a-very-long-release-name-that-helm-still-accepts-x53"
    helm.validate_release_name(release)
    rendered = chart.render(
        {"watchNamespaces": ["ci"], "peering": {"enabled": True}},
        name=release,
        namespace=RELEASE_NAMESPACE,
    )
    documents = [
        d for path, text in rendered.items() if path.endswith(".yaml") for d in load_documents(text)
    ]
    for document in documents:
        name = document["metadata"]["name"]
        assert len(name) <= 63, name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name


def test_name_overrides(chart: helm.Chart) -> None:
    documents = manifests(chart, {"fullnameOverride": "ci-worker"})
    assert one(documents, "Deployment")["metadata"]["name"] == "ci-worker"
    assert one(documents, "ClusterRole")["metadata"]["name"] == "ci-worker"
    labels = one(manifests(chart, {"nameOverride": "cpw"}), "Deployment")["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "cpw"


def test_packaged_chart_renders_like_the_directory(chart: helm.Chart, tmp_path: Path) -> None:
    archive = helm.package(CHART_DIR, destination=tmp_path)
    assert Path(archive).name == "cpworker-0.1.0.tgz"
    with helm.Chart.load(archive) as packaged:
        assert packaged.schema == chart.schema
        values = VALUES_MATRIX["ha-namespaced"]
        assert packaged.render(values, name="cpw") == chart.render(values, name="cpw")
