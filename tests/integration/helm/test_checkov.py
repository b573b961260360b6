"""checkov's Kubernetes checks pass on every rendered variant of the chart: each finding is
either fixed or suppressed in the chart with its reason (`checkov.io/skipN` annotations)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.integration.helm.chart import REPO_ROOT, VALUES_MATRIX, manifests

CHECKOV = REPO_ROOT / ".venv-tools" / "bin" / "checkov"


def _run_checkov(directory: Path) -> list[dict[str, Any]]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make tools`")
    completed = subprocess.run(
        [
            str(CHECKOV),
            *("-d", str(directory), "--framework", "kubernetes"),
            *("--output", "json", "--soft-fail"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    report = json.loads(completed.stdout)
    return report if isinstance(report, list) else [report]


def _failed(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]


def _write(directory: Path, name: str, documents: list[dict[str, Any]]) -> None:
    (directory / f"{name}.yaml").write_text(yaml.safe_dump_all(documents), encoding="utf-8")


def test_checkov_passes_every_variant(chart: helm.Chart, tmp_path: Path) -> None:
    for name, values in VALUES_MATRIX.items():
        _write(tmp_path, name, manifests(chart, values))
    reports = _run_checkov(tmp_path)
    assert _failed(reports) == []
    passed = sum(report["summary"]["passed"] for report in reports)
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    assert passed > 100, "checkov ran no meaningful checks"
    # Only the deliberate, documented suppressions.
    assert skipped <= {"CKV_K8S_9", "CKV_K8S_38", "CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_43"}


def test_checkov_catches_a_weakened_deployment(chart: helm.Chart, tmp_path: Path) -> None:
    """The check above can fail: a privileged, root container is reported."""
    documents = manifests(chart)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True, "runAsUser": 0}
    _write(tmp_path, "weakened", documents)
    failed = _failed(_run_checkov(tmp_path))
    assert any(line.startswith("CKV_K8S_16 ") for line in failed), failed  # privileged
