"""Shared pytest wiring. Stand-in fixtures live next to the stand-ins, as pytest plugins."""

from __future__ import annotations

import pytest

from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.operatorimage import with_operator_image

pytest_plugins = [
    "cpworker.sandbox.codepipeline.pytest_plugin",
    "cpworker.sandbox.kube.pytest_plugin",
]


@pytest.fixture
def kube_runner_config(kube_runner_config: RunnerConfig) -> RunnerConfig:
    """The local Kubernetes knows the operator's image: every job pod with artifacts runs the
    artifact containers (scripted: they succeed; local-exec: the venv's `cpworker` for real)."""
    return with_operator_image(kube_runner_config)
