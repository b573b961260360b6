"""Render the cpworker chart with the real Helm v4 engine (helm-python-sdk) for tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "helm" / "cpworker"
RELEASE = "cpw"
RELEASE_NAMESPACE = "cpworker-system"

Manifest = dict[str, Any]


def _load_sync_module() -> ModuleType:
    """helm/sync_crds.py is a script (no package around it): load it by path."""
    spec = importlib.util.spec_from_file_location("sync_crds", REPO_ROOT / "helm" / "sync_crds.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sync_crds", module)
    spec.loader.exec_module(module)
    return module


sync_crds = _load_sync_module()

# The values matrix every render-level check runs over: the modes users install in.
VALUES_MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["ci", "build"]},
    "ha": {
        "replicaCount": 2,
        "peering": {"enabled": True},
        "podDisruptionBudget": {"enabled": True},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "cpworker"}},
            }
        ],
    },
    "ha-namespaced": {
        "replicaCount": 2,
        "peering": {"enabled": True},
        "watchNamespaces": ["ci"],
    },
    "irsa": {
        "serviceAccount": {
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cpw"}
        },
        "aws": {"region": "eu-west-1"},
    },
    "events-shard": {
        "workerSelector": "shard in (a,b),!legacy",
        "events": {
            "queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/cpworker-events",
            "region": "eu-west-1",
        },
        "peering": {"name": "cpworker-shard-a"},
        "crds": {"enabled": False},
    },
    "metrics": {
        "metrics": {
            "enabled": True,
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
            "dashboard": {"enabled": True, "annotations": {"grafana_folder": "CI"}},
        },
    },
    "everything-set": {
        "image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "logging": {"format": "text", "level": "DEBUG"},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["system"]}
                            ]
                        }
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/team": "ci"},
        "podLabels": {"team": "ci"},
        "crds": {"keep": False},
    },
}


@contextmanager
def load_chart(path: Path = CHART_DIR) -> Iterator[helm.Chart]:
    chart = helm.Chart.load(path)
    try:
        yield chart
    finally:
        chart.close()


def render_files(chart: helm.Chart, values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce it."""
    rendered: dict[str, str] = chart.render(
        dict(values or {}), name=RELEASE, namespace=RELEASE_NAMESPACE, is_install=True
    )
    return rendered


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate mapping keys, which PyYAML silently accepts but
    the Kubernetes API server (strict decoding) and kubectl reject."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    keys = [loader.construct_object(key_node) for key_node, _ in node.value]
    duplicates = sorted({str(key) for key in keys if keys.count(key) > 1})
    if duplicates:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {duplicates}", node.start_mark
        )
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc]


def manifests(chart: helm.Chart, values: Mapping[str, Any] | None = None) -> list[Manifest]:
    """Every Kubernetes object the chart renders for `values` (NOTES.txt excluded)."""
    documents: list[Manifest] = []
    for path, text in sorted(render_files(chart, values).items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        documents.extend(load_documents(text))
    return documents


def by_kind(documents: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in documents if doc.get("kind") == kind]


def one(documents: list[Manifest], kind: str) -> Manifest:
    found = by_kind(documents, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def operator_container(documents: list[Manifest]) -> dict[str, Any]:
    deployment = one(documents, "Deployment")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]
