"""Shared pytest wiring. Stand-in fixtures live next to the stand-ins, as pytest plugins.

The suite-wide canary watch (tests/canaries.py) lives here: canaries planted where the
stand-ins hand out secrets, everything the suite produces scanned, the session failed on a hit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario
from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.operatorimage import with_operator_image
from tests import canaries
from tests.unit.operator import samples

pytest_plugins = [
    "cpworker.sandbox.codepipeline.pytest_plugin",
    "cpworker.sandbox.kube.pytest_plugin",
]


@pytest.fixture
def kube_runner_config(kube_runner_config: RunnerConfig) -> RunnerConfig:
    """The local Kubernetes knows the operator's image: every job pod with artifacts runs the
    artifact containers (scripted: they succeed; local-exec: the venv's `cpworker` for real)."""
    return with_operator_image(kube_runner_config)


# A scenario's secret configuration unless a test gives its own.
DEFAULT_SECRET_CONFIGURATION = {"CanaryToken": samples.CANARY_CONFIG_VALUE}


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(canaries.CanaryHandler())


def pytest_runtest_setup(item: pytest.Item) -> None:
    canaries.WATCH.test = item.nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        canaries.WATCH.scan(f"the {report.when} report", report.longreprtext)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if canaries.WATCH.hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    watch = canaries.WATCH
    if not watch.hits:
        return
    terminalreporter.section("canary secrets leaked", sep="!", red=True, bold=True)
    for test, where in sorted(set(watch.hits)):
        terminalreporter.write_line(f"{test}: in {where}")
    terminalreporter.write_line(
        f"{len(watch.hits)} canary hit(s) in {watch.scanned} texts scanned: a secret reached "
        "a log, an Event, a status or an exception (tests/canaries.py)"
    )


@pytest.fixture
def codepipeline_options() -> dict[str, Any]:
    """Every job credential the CodePipeline stand-in mints starts with a canary."""
    return {"credential_markers": (samples.CANARY_SECRET_KEY, samples.CANARY_SESSION_TOKEN)}


@pytest.fixture
def cp_scenario(cp_client: Any, s3_client: Any) -> Callable[..., Scenario]:
    """`create_scenario` with a canary secret configuration value unless a test gives its own."""

    def build(**options: Any) -> Scenario:
        options.setdefault("secret_configuration", DEFAULT_SECRET_CONFIGURATION)
        return create_scenario(cp_client, s3_client, **options)

    return build


@pytest.fixture(autouse=True)
def _watch_the_kubernetes_stand_in(request: pytest.FixtureRequest) -> None:
    """Events and worker statuses of a test's Kubernetes stand-in go past the canary watch."""
    if "kube" in request.fixturenames:
        canaries.watch_store(request.getfixturevalue("kube"))
