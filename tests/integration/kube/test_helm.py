"""The Helm v4 engine (helm-python-sdk) against the stand-in: install, upgrade, rollback and
uninstall of a small chart; releases are stored in Secrets (sent as protobuf)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from kubernetes.client import CoreV1Api

from cpworker.sandbox.kube import KubeStandIn
from tests.integration.kube.helpers import is_gone

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\nextra: true\n",
    "templates/resources.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
  {{- if .Values.extra }}
  extra: "yes"
  {{- end }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-sa
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-secret
stringData:
  token: abc
""",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "chart"
    for name, text in CHART.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_install_upgrade_rollback_uninstall(
    kube: KubeStandIn, kubeconfig: Path, kube_api: Any, chart: Path
) -> None:
    core: Any = CoreV1Api(kube_api)
    config = helm.Config(kubeconfig_path=kubeconfig, namespace="default")

    def data() -> dict[str, str]:
        return dict(core.read_namespaced_config_map("demo-settings", "default").data)

    def release_revisions() -> list[tuple[int, str]]:
        return [(entry["revision"], entry["status"]) for entry in config.history("demo")]

    config.install(chart, "demo", {"greeting": "hi"}, timeout=30)
    assert data() == {"greeting": "hi", "extra": "yes"}
    assert core.read_namespaced_service_account("demo-sa", "default")
    stored = core.list_namespaced_secret("default", label_selector="owner=helm,name=demo")
    assert [s.metadata.labels["status"] for s in stored.items] == ["deployed"]

    config.upgrade(chart, "demo", {"greeting": "bye", "extra": False}, timeout=30)
    assert data() == {"greeting": "bye"}  # a key the new manifest drops is removed
    config.rollback("demo", version=1, timeout=30)
    assert data() == {"greeting": "hi", "extra": "yes"}
    assert release_revisions() == [(1, "superseded"), (2, "superseded"), (3, "deployed")]

    config.uninstall("demo", timeout=30)
    for read in (
        lambda: core.read_namespaced_config_map("demo-settings", "default"),
        lambda: core.read_namespaced_service_account("demo-sa", "default"),
        lambda: core.read_namespaced_secret("demo-secret", "default"),
    ):
        assert is_gone(read)
    leftover = core.list_namespaced_secret("default", label_selector="owner=helm")
    assert leftover.items == []
    verbs = {(r.verb, r.resource) for r in kube.audit()}
    assert {("create", "secrets"), ("delete", "configmaps")} <= verbs
