"""pytest fixtures for the Kubernetes stand-in (registered by tests/conftest.py).

- `kube`: a running `KubeStandIn` per test, fast job-runner timings, project CRDs loaded.
- `kube_runner_config`: the RunnerConfig `kube` starts from (FAST_RUNNER); a conftest may
  override it (tests/conftest.py adds the operator's image).
- `kubeconfig`: path of a kubeconfig for it.
- `kube_api`: a `kubernetes.client.ApiClient` configured for it.
- `kubectl`: runs the real `kubectl` against it: `kubectl("get", "pods", "-o", "json")`.

A test changes the stand-in with a marker, e.g. the opt-in realism of docs/sandbox-kubernetes.md:
`@pytest.mark.kube_standin(admission=AdmissionConfig(owner_references_permission_enforcement=
True), runner={"default_image_user": "0"}, gc_delay=1.0)` (`runner` overrides the fast
RunnerConfig fields; other keywords go to KubeStandIn).

Opt-in faults for a whole run (off unless set; see docs/sandbox-kubernetes.md, Faults):
`CPWORKER_SANDBOX_KUBE_FAULTS="*:*:status=429|500|503,probability=0.1"` (rules separated by
`;` or spaces) and `CPWORKER_SANDBOX_KUBE_FAULT_SEED=7` apply to every `kube` fixture. The
test's own clients are exempt (the `kubectl` fixture, and `kube_api`, which then sends its own
User-Agent): the faults are for the system under test.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import kubernetes
import pytest

from cpworker.sandbox.kube.faults import parse_faults
from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.kube.standin import PROJECT_CRDS, KubeStandIn

# The kubernetes package is untyped here; one typed door in.
_new_client: Any = kubernetes.config.new_client_from_config
FAST_RUNNER = RunnerConfig(
    default_duration=0.2,
    start_delay=0.01,
    retry_delay=0.05,
    retry_delay_max=0.4,
    create_retry=0.1,
    create_retry_max=1.0,
    terminal_condition_delay=0.05,
    secret_sync_delay=0.2,
)
FAULTS_VARIABLE = "CPWORKER_SANDBOX_KUBE_FAULTS"
FAULT_SEED_VARIABLE = "CPWORKER_SANDBOX_KUBE_FAULT_SEED"
HARNESS_AGENT = "cpworker-test-harness"  # kube_api's User-Agent under the opt-in


class Kubectl(Protocol):
    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kube_standin(runner=None, **options): RunnerConfig overrides and KubeStandIn options "
        "for the `kube` fixture",
    )


@pytest.fixture
def kube_runner_config() -> RunnerConfig:
    return FAST_RUNNER


@pytest.fixture
def kube(request: pytest.FixtureRequest, kube_runner_config: RunnerConfig) -> Iterator[KubeStandIn]:
    marker = request.node.get_closest_marker("kube_standin")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    runner = dataclasses.replace(kube_runner_config, **(options.pop("runner", None) or {}))
    options.setdefault("bookmark_interval", 1.0)
    with KubeStandIn(runner_config=runner, **options) as stand_in:
        if any(PROJECT_CRDS.glob("*.yaml")):
            stand_in.load_crds()
        apply_environment_faults(stand_in)
        yield stand_in


def apply_environment_faults(stand_in: KubeStandIn) -> None:
    """The opt-in of a faulted run: the rules of $CPWORKER_SANDBOX_KUBE_FAULTS, if set."""
    rules = parse_faults(os.environ.get(FAULTS_VARIABLE, ""))
    seed = os.environ.get(FAULT_SEED_VARIABLE)
    if seed:
        stand_in.faults.seed(int(seed))
    for target, settings in rules:
        stand_in.faults.set(target, **settings)
    if rules:
        stand_in.faults.exempt("kubectl/", HARNESS_AGENT)


@pytest.fixture
def kubeconfig(kube: KubeStandIn, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_api(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    client: Any = _new_client(str(kubeconfig))
    if os.environ.get(FAULTS_VARIABLE):  # the opt-in faults the system under test only
        client.user_agent = HARNESS_AGENT
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    cache = tmp_path / "kubectl-cache"
    environment = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}

    def run(
        *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args]
        result = subprocess.run(  # noqa: S603 - fixed binary, test-controlled arguments
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command[5:])} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    return run
