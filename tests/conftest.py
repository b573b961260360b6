"""Shared pytest wiring. Stand-in fixtures live next to the stand-ins, as pytest plugins.

The suite-wide canary watch (tests/canaries.py) lives here: canaries planted where the
stand-ins hand out secrets, everything the suite produces scanned, the session failed on a hit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

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


# Hypothesis's per-example deadline and its too_slow health check time the machine, not the
# code: beside `make test`'s other workers on two cores, one generated pod list took 4.6 s.
settings.register_profile("cpworker", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cpworker")

# A scenario's secret configuration unless a test gives its own.
DEFAULT_SECRET_CONFIGURATION = {"CanaryToken": samples.CANARY_CONFIG_VALUE}


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(canaries.CanaryHandler())


def pytest_runtest_setup(item: pytest.Item) -> None:
    canaries.WATCH.test = item.nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        # By node id: under xdist the controller sees the reports but runs no test itself.
        canaries.WATCH.scan(f"the {report.when} report", report.longreprtext, test=report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        # An xdist worker: its exit status is not the run's, so the controller gets the hits.
        workeroutput["canary_hits"] = [list(hit) for hit in canaries.WATCH.hits]
        workeroutput["canary_scanned"] = canaries.WATCH.scanned
    if canaries.WATCH.hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The xdist controller adds each worker's hits to its own watch (before its sessionfinish)."""
    output = getattr(node, "workeroutput", {})
    canaries.WATCH.merge(output.get("canary_hits", []), int(output.get("canary_scanned", 0)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs on xdist workers; each module's tests stay on one worker, in their
    order, so that module fixtures are set up once and order-dependent modules (the docs'
    console blocks build on the README's) keep their order; the image tests, several modules
    sharing one build, form one unit. Not `--dist loadgroup`: with pytest 9.2 its groups
    silently stop working (pytest-dev/pytest-xdist#1386)."""
    from xdist.scheduler import (  # type: ignore[import-untyped]  # noqa: PLC0415 - xdist only
        LoadScopeScheduling,
    )

    class ByModule(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByModule(config, log)


IMAGE_TESTS = "tests/image"


def work_unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return IMAGE_TESTS if module.startswith(IMAGE_TESTS + "/") else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The image tests first: a cold image build is the longest unit of work (minutes), so
    under xdist it starts at once instead of ending the run alone."""
    items.sort(key=lambda item: work_unit(item.nodeid) != IMAGE_TESTS)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    watch = canaries.WATCH
    if not watch.hits:
        return
    terminalreporter.section("canary secrets leaked", sep="!", red=True, bold=True)
    # A failure report is scanned by the xdist worker and by the controller: count it once.
    hits = sorted(set(watch.hits))
    for test, where in hits:
        terminalreporter.write_line(f"{test}: in {where}")
    terminalreporter.write_line(
        f"{len(hits)} canary hit(s) in {watch.scanned} texts scanned: a secret reached "
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


# Loggers whose level or propagation an in-process CLI changes (kopf's, `cpworker run`'s).
_CONFIGURED_LOGGERS = ("", "asyncio", "botocore", "boto3", "urllib3", "kubernetes")


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """Each test leaves logging as it found it. kopf's CLI, run in-process by the kopf tests
    (`--verbose`), sets the root logger to DEBUG for good; botocore at DEBUG then logs response
    bodies, job credentials included, in every later test of that process (the canary watch
    caught it once xdist changed which tests follow which)."""
    saved = {name: logging.getLogger(name) for name in _CONFIGURED_LOGGERS}
    state = {name: (logger.level, logger.propagate) for name, logger in saved.items()}
    handlers = set(logging.getLogger().handlers)
    yield
    for name, logger in saved.items():
        logger.setLevel(state[name][0])
        logger.propagate = state[name][1]
    root = logging.getLogger()
    for handler in list(root.handlers):
        # pytest's capture handlers come and go per phase; kopf's stream handler must go
        # (cpworker's own `configure` hands its handler back, and its callers detach it).
        if handler not in handlers and type(handler).__module__.startswith("kopf"):
            root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _watch_the_kubernetes_stand_in(request: pytest.FixtureRequest) -> None:
    """Events and worker statuses of a test's Kubernetes stand-in go past the canary watch."""
    if "kube" in request.fixturenames:
        canaries.watch_store(request.getfixturevalue("kube"))
