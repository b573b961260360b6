"""The suite-wide canary watch (tests/canaries.py) sees what it must, and fails a session."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from cpworker.sandbox.kube import KubeStandIn
from tests import canaries
from tests.unit.operator import samples
from tests.unit.protocol.fakes import FakeKube, Request

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]


def test_log_records_with_a_canary_are_hits_tracebacks_included() -> None:
    watch = canaries.Watch(test="t")
    logger = logging.getLogger("tests.canary-watch")
    logger.propagate = False  # the session's own watch must not see the planted canary
    handler = canaries.CanaryHandler(watch)
    logger.addHandler(handler)
    try:
        logger.warning("nothing secret here")
        error = ValueError(samples.CANARY_SESSION_TOKEN)
        logger.error("failed", exc_info=(ValueError, error, None))
        logger.warning("%s", samples.CANARY_CONFIG_VALUE)
    finally:
        logger.removeHandler(handler)
    assert watch.scanned == 3
    assert watch.hits == [("t", "log record of tests.canary-watch")] * 2


def test_events_of_the_stand_in_and_statuses_written_to_the_fakes_are_scanned() -> None:
    watch = canaries.Watch(test="t")
    with KubeStandIn(job_runner=False, tls=False) as kube:
        canaries.watch_store(kube, watch)
        kube.apply_manifests(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": "e1", "namespace": "default"},
                    "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                    "reason": "Leak",
                    "message": f"token {samples.CANARY_SECRET_KEY}",
                }
            ]
        )
    assert watch.hits == [("t", "an Event")]
    fake = FakeKube()
    status = {"status": {"lastError": {"message": samples.CANARY_CONFIG_VALUE}}}
    fake.requests.append(Request("PATCH", "customactionworkers", "ci", "w", status, "status"))
    canaries.watch_fake(fake, watch)
    assert watch.hits[-1] == ("t", "PATCH customactionworkers")


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_session_whose_code_logs_a_canary_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    """Also under `make test`'s xdist workers: a hit in a worker fails the whole run."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(
        test_leak=f"""
import logging

def test_passes_but_leaks():
    logging.getLogger("cpworker.reporter").warning("token {samples.CANARY_SESSION_TOKEN}")

def test_passes_cleanly():
    logging.getLogger("cpworker.reporter").warning("nothing secret")
"""
    )
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{ROOT / 'operator'}")
    pytester.chdir()
    result = pytester.run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, "test_leak.py"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "canary secrets leaked" in result.stdout.str()
    assert "test_leak.py::test_passes_but_leaks: in log record of cpworker.reporter" in (
        result.stdout.str()
    )
    assert "2 passed" in result.stdout.str()
