"""The stand-in as a sandbox stack component: kubeconfig written, KUBECONFIG returned."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cpworker.sandbox.kube.component import KubeComponent


def test_component_writes_a_working_kubeconfig(tmp_path: Path) -> None:
    component = KubeComponent()
    env = component.start({}, tmp_path)
    try:
        assert env == {"KUBECONFIG": str(tmp_path / "kubeconfig")}
        shown = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                env["KUBECONFIG"],
                "--cache-dir",
                str(tmp_path / "c"),
                "get",
                "crd",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "customactionworkers.cpworker.io" in shown.stdout
    finally:
        component.stop()
    assert component.kube is None
