"""The Kubernetes stand-in as a sandbox stack component (`SandboxStack.components`):
started after CodePipeline and moto, it writes `DIR/kubeconfig` and adds `KUBECONFIG`."""

from __future__ import annotations

from pathlib import Path

from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.kube.standin import PROJECT_CRDS, KubeStandIn


class KubeComponent:
    def __init__(
        self, runner_config: RunnerConfig | None = None, *, load_project_crds: bool = True
    ) -> None:
        self.runner_config = runner_config
        self.load_project_crds = load_project_crds
        self.kube: KubeStandIn | None = None

    def start(self, env: dict[str, str], directory: Path) -> dict[str, str]:
        del env  # the Kubernetes API needs nothing from the AWS side
        self.kube = KubeStandIn(runner_config=self.runner_config).start()
        if self.load_project_crds and any(PROJECT_CRDS.glob("*.yaml")):
            self.kube.load_crds()
        kubeconfig = self.kube.write_kubeconfig(directory / "kubeconfig")
        return {"KUBECONFIG": str(kubeconfig)}

    def stop(self) -> None:
        if self.kube is not None:
            self.kube.stop()
            self.kube = None
