"""Fixtures for the operator image: built (or found built) once per session by the code behind
`make image`, and run with podman the way the Helm chart runs the operator.

They skip, saying why, where podman cannot run (not installed, not root); .ci/run installs
the packages first when it runs as root, so CI always runs them. `CPWORKER_IMAGE_BASE`
chooses the base as `make image IMAGE_BASE=...` does (default: the mmdebstrap Debian base).

For a test of a command inside the image (`cpworker artifacts ...`, say):

    def test_x(run_in_image):
        result = run_in_image("artifacts", "--help", network="host", env={...})
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.e2e.conftest import Cluster
from tools.image import podman
from tools.image.build import BuiltImage, build

# A cold build (Debian base, wheelhouse, image) takes minutes on a loaded 2-core machine;
# the first test of a session pays for it in its setup.
BUILD_TIMEOUT = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first image test's setup may take a cold build's time, beyond the suite's per-test
    timeout (a cold build took 292 s of the 300 on CI, and longer beside `make test`'s other
    workers). Under xdist the image tests share one worker (tests/conftest.py): one build."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT + 300))


class RunInImage(Protocol):
    def __call__(self, *command: str, **options: Any) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def image() -> BuiltImage:
    reason = podman.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    base = os.environ.get("CPWORKER_IMAGE_BASE", "debian")
    if base == "debian" and shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (it makes the Debian base): apt-get install it")
    return build(base)


@pytest.fixture
def run_in_image(image: BuiltImage) -> RunInImage:
    """Run the image's entrypoint with `command`, hardened as the chart runs it (uid 65532,
    read-only root, /tmp tmpfs, no capabilities); options as `podman.run_in_image`."""

    def run(*command: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return podman.run_in_image(image.ref, *command, **options)

    return run


@pytest.fixture(scope="session")
def image_python(image: BuiltImage) -> Callable[..., Any]:
    """Run a Python snippet with the image's interpreter (hardened as `run_in_image`; options
    as `podman.run_in_image`); the snippet prints JSON, returned parsed."""

    def run(code: str, **options: Any) -> Any:
        result = podman.run_in_image(
            image.ref,
            "-I",
            "-c",
            code,
            entrypoint="/opt/cpworker/bin/python",
            check=True,
            **options,
        )
        return json.loads(result.stdout)

    return run


@pytest.fixture
def cluster(kube_api: Any, kubectl: Any) -> Cluster:
    return Cluster(kube_api, kubectl)


class OperatorContainer:
    """`cpworker run` in a container of the image, detached; its logs read through podman."""

    def __init__(self, name: str) -> None:
        self.name = name

    def logs(self) -> str:
        result = podman.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = podman.podman("inspect", "--format={{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def stop(self, timeout: int = 15) -> int:
        """SIGTERM (as the kubelet sends it), then the exit code."""
        podman.podman("stop", f"--time={timeout}", self.name, check=False, timeout=timeout + 30)
        code = podman.podman("inspect", "--format={{.State.ExitCode}}", self.name, check=False)
        return int(code.stdout.strip() or -1)

    def remove(self) -> None:
        podman.podman("rm", "--force", self.name, check=False)


@pytest.fixture
def operator_container(
    image: BuiltImage, kubeconfig: Path, aws_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., OperatorContainer]]:
    """Start the operator in the image: `start(*run_args, **CPWORKER_settings)`.

    As the chart would run it: the chart's arguments and `CPWORKER_*`/`POD_*` environment,
    AWS settings in the environment, and a kubeconfig mounted read-only in place of the
    in-cluster service account. `--network=host` lets it reach the stand-ins on 127.0.0.1.
    """
    started: list[OperatorContainer] = []
    # The stand-in writes its kubeconfig 0600 for root; the container's uid 65532 reads it.
    readable = tmp_path / "operator-kubeconfig"
    readable.write_bytes(kubeconfig.read_bytes())
    readable.chmod(0o644)

    def start(*run_args: str, env: dict[str, str]) -> OperatorContainer:
        name = f"cpworker-test-{uuid.uuid4().hex[:10]}"
        environment = {
            **aws_env,
            **env,
            "KUBECONFIG": "/etc/cpworker/kubeconfig",
            "POD_NAME": name,
            "POD_NAMESPACE": "cpworker-system",
        }
        container = OperatorContainer(name)
        started.append(container)
        podman.start_detached(
            image.ref,
            name,
            "run",
            *run_args,
            env=environment,
            mounts={readable: "/etc/cpworker/kubeconfig"},
            network="host",
        )
        return container

    yield start
    for container in started:
        container.stop()
        container.remove()
