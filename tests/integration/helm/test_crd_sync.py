"""The chart's CRD template is exactly the generated `crds/*.yaml`, plus the chart's own
metadata; `helm/sync_crds.py` keeps it so."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.integration.helm.chart import CHART_DIR, REPO_ROOT, load_chart, manifests, sync_crds

CRDS_DIR = REPO_ROOT / "crds"
TEMPLATE = CHART_DIR / "templates" / "crds.yaml"
CHART_ANNOTATIONS = {
    "helm.sh/resource-policy",
    "argocd.argoproj.io/sync-wave",
    "argocd.argoproj.io/sync-options",
}


def placeholder_crd() -> dict[str, Any]:
    """A stand-in CRD with what a generated one may hold, including text that looks like a
    Go template (`{{ }}`), which must survive the trip through Helm unchanged."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "customactionworkers.cpworker.io",
            "labels": {"cpworker.io/generated": "true", "app.kubernetes.io/name": "cpworker"},
            "annotations": {"cpworker.io/generated-from": "cpworker.models"},
        },
        "spec": {
            "group": "cpworker.io",
            "scope": "Namespaced",
            "names": {
                "kind": "CustomActionWorker",
                "plural": "customactionworkers",
                "singular": "customactionworker",
                "shortNames": ["caw"],
                "categories": ["cpworker"],
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        }
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "description": "Output variables like {{ .Build }} and "
                                    "{{- x }} are passed through: 'quotes', \"too\".",
                                    "properties": {
                                        "maxInFlight": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 1000000,
                                            "default": 10,
                                        },
                                        "ratio": {"type": "number", "maximum": 0.5},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.maxInFlight >= 1",
                                            "message": "maxInFlight must be positive",
                                        }
                                    ],
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def without_chart_metadata(crd: dict[str, Any]) -> dict[str, Any]:
    """A CRD without the labels and annotations the chart sets (compared separately)."""
    stripped = copy.deepcopy(crd)
    metadata = stripped["metadata"]
    for key, added in (("labels", sync_crds.CHART_LABEL_KEYS), ("annotations", CHART_ANNOTATIONS)):
        kept = {k: v for k, v in metadata.get(key, {}).items() if k not in added}
        if kept:
            metadata[key] = kept
        else:
            metadata.pop(key, None)
    return stripped


def rendered_crds(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    documents = manifests(chart, values)
    return [
        d
        for d in documents
        if d["kind"] == "CustomResourceDefinition"
        and not d["metadata"]["name"].endswith(".kopf.dev")
    ]


@pytest.fixture
def placeholder_chart(tmp_path: Path) -> Path:
    """A copy of the chart whose CRD template was synced from a placeholder crds/ dir."""
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "cpworker.io_customactionworkers.yaml").write_text(
        yaml.safe_dump(placeholder_crd(), sort_keys=False), encoding="utf-8"
    )
    chart_dir = tmp_path / "cpworker"
    shutil.copytree(CHART_DIR, chart_dir)
    template = chart_dir / "templates" / "crds.yaml"
    assert sync_crds.main(["--crds", str(crds), "--template", str(template)]) == 0
    return chart_dir


def test_chart_crd_template_is_in_sync_with_crds_dir() -> None:
    expected = sync_crds.render_template(sync_crds.load_crds(CRDS_DIR))
    current = TEMPLATE.read_text(encoding="utf-8")
    assert current == expected, (
        f"{TEMPLATE.relative_to(REPO_ROOT)} is stale: run `{sync_crds.SYNC_COMMAND}` "
        "(after `cpworker crd --output crds/`) and commit the result"
    )


def test_rendered_chart_crds_equal_crds_dir(chart: helm.Chart) -> None:
    generated = sync_crds.load_crds(CRDS_DIR)
    rendered = rendered_crds(chart)
    assert [without_chart_metadata(c) for c in rendered] == [
        without_chart_metadata(c) for c in generated
    ]
    for ours, theirs in zip(rendered, generated, strict=True):
        # The generated labels the chart takes over keep their values with default values.
        assert theirs["metadata"].get("labels", {}).items() <= ours["metadata"]["labels"].items()


def test_placeholder_crd_survives_helm_unchanged(placeholder_chart: Path) -> None:
    with load_chart(placeholder_chart) as chart:
        (crd,) = rendered_crds(chart)
    assert without_chart_metadata(crd) == without_chart_metadata(placeholder_crd())
    assert crd["metadata"]["labels"]["cpworker.io/generated"] == "true"
    kubernetes_validate.validate(crd, "1.28.0", strict=True)
    annotations = crd["metadata"]["annotations"]
    assert annotations["helm.sh/resource-policy"] == "keep"
    assert annotations["argocd.argoproj.io/sync-wave"] == "-1"
    options = annotations["argocd.argoproj.io/sync-options"].split(",")
    assert set(options) == {"ServerSideApply=true", "Prune=false", "Delete=false"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_keep_false_lets_uninstall_delete_them(placeholder_chart: Path) -> None:
    with load_chart(placeholder_chart) as chart:
        (crd,) = rendered_crds(chart, {"crds": {"keep": False}})
    assert "helm.sh/resource-policy" not in crd["metadata"]["annotations"]
    options = crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
    assert options == "ServerSideApply=true"


def test_crds_enabled_false_ships_none(placeholder_chart: Path) -> None:
    with load_chart(placeholder_chart) as chart:
        assert rendered_crds(chart, {"crds": {"enabled": False}}) == []
        assert len(rendered_crds(chart)) == 1


def test_check_mode_reports_a_stale_template_and_how_to_fix_it(
    placeholder_chart: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crds = placeholder_chart.parent / "crds"
    template = placeholder_chart / "templates" / "crds.yaml"
    check = ["--check", "--crds", str(crds), "--template", str(template)]
    assert sync_crds.main(check) == 0
    changed = placeholder_crd()
    changed["spec"]["names"]["shortNames"] = ["worker"]
    (crds / "cpworker.io_customactionworkers.yaml").write_text(
        yaml.safe_dump(changed), encoding="utf-8"
    )
    assert sync_crds.main(check) == 1
    assert sync_crds.SYNC_COMMAND in capsys.readouterr().err


def test_rejects_a_non_crd_document() -> None:
    with pytest.raises(ValueError, match="not a CustomResourceDefinition"):
        sync_crds.render_template([{"kind": "ConfigMap", "metadata": {"name": "x"}}])
