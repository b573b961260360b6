"""Acceptance: `cpworker run` SIGKILLed at random moments, not only at the named crash points,
while the jobs of several workers flow; restarted each time.

Afterwards: every execution finished, every CodePipeline job reported exactly once (the
CodePipeline stand-in's request log), no Kubernetes Job ran twice for one CodePipeline job (every
change of the Kubernetes stand-in's store, tests/e2e/history.py), no Secret outlived its Job,
and each worker's succeeded/failed counters are exact.

Every third life may instead exit at a random named crash point (CPWORKER_TEST_CRASH_AT), if it
reaches it before its kill: the narrow windows random moments seldom hit.

`make test` runs a short variant (4 kills, 12 jobs, about half a minute). `CPWORKER_SOAK=1` runs
the soak (`CPWORKER_SOAK_KILLS`, default 50; `CPWORKER_SOAK_JOBS`, default 210): a few minutes,
figures printed and, with `CPWORKER_SOAK_REPORT=path`, written as JSON (docs/reliability.md
quotes them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cpworker.sandbox.kube import KubeStandIn
from tests.e2e.conftest import Stack, wait_for, worker_manifest
from tests.e2e.history import ClusterHistory, results_per_job
from tests.e2e.test_restart_and_canary import STAGES

SOAK = os.environ.get("CPWORKER_SOAK") == "1"
KILLS = int(os.environ.get("CPWORKER_SOAK_KILLS", "50")) if SOAK else 4
JOBS = int(os.environ.get("CPWORKER_SOAK_JOBS", "210")) if SOAK else 12
# Read at import: the operator fixtures clear CPWORKER_* from the environment of the test.
SEED = int(os.environ.get("CPWORKER_SOAK_SEED") or random.randrange(10**6))
REPORT = os.environ.get("CPWORKER_SOAK_REPORT")
# (worker, what its pods do, how its jobs end)
WORKERS = [
    ("quick", {"sandbox.cpworker.io/duration": "300ms"}, "Succeeded"),
    ("slow", {"sandbox.cpworker.io/duration": "1500ms"}, "Succeeded"),
    (
        "failing",
        {"sandbox.cpworker.io/duration": "500ms", "sandbox.cpworker.io/exit-code": "1"},
        "Failed",
    ),
]


# The named stage boundaries of tests/e2e/test_restart_and_canary.py, the counter's, and
# the record's (before the Secret is deleted).
CRASH_POINTS = [*STAGES, "after-count", "after-record"]


@dataclasses.dataclass
class Figures:
    kills: int = 0  # lives ended: SIGKILL at a random moment, or exit at a crash point
    crash_point_exits: int = 0
    jobs: int = 0
    lost: int = 0
    ran_twice: int = 0
    double_reports: int = 0
    leaked_secrets: int = 0
    counter_errors: int = 0
    jobs_recreated_unreleased: int = 0
    seconds: float = 0.0


def leaked_secrets(stack: Stack) -> list[str]:
    """cpworker Secrets whose owning Job (by uid) no longer exists."""
    live = {j["metadata"]["uid"] for j in stack.cluster.jobs()}
    return [
        s["metadata"]["name"]
        for s in stack.cluster.secrets()
        if not {ref.get("uid") for ref in s["metadata"].get("ownerReferences") or []} & live
    ]


@pytest.mark.codepipeline_standin(config={"redelivery_window": 2.0})
def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(
    stack: Stack, kube: KubeStandIn, operator_process: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seed = SEED
    rng = random.Random(seed)
    history = ClusterHistory.attach(kube)
    scenarios = {}
    for name, pod_script, _ in WORKERS:
        scenarios[name] = scenario = stack.cp_scenario(pool=name)
        stack.cluster.apply(worker_manifest(scenario, name, annotations=pod_script))
    expected = {name: end for name, _, end in WORKERS}
    executions: list[tuple[str, str]] = []
    figures = Figures()
    began = time.monotonic()

    def start_some(count: int) -> None:
        for _ in range(count):
            if len(executions) >= JOBS:
                return
            name = WORKERS[len(executions) % len(WORKERS)][0]
            executions.append((name, scenarios[name].start(stack.cp_client)))

    per_life = -(-JOBS // (KILLS + 1))  # feed the jobs over the lives, so kills meet work
    for life in range(KILLS):
        start_some(per_life)
        # Every third life also dies at a named stage boundary, if it reaches one first: the
        # narrow windows (a few milliseconds between a Put and its record) that random
        # moments seldom hit.
        crash_at = rng.choice(CRASH_POINTS) if life % 3 == 2 else None
        operator = operator_process(crash_at=crash_at)
        assert operator.proc is not None
        if crash_at is None:
            # Anywhere in a life: while kopf starts, claims, reports, or idles.
            time.sleep(rng.uniform(0.5, 4.0))
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):
                operator.proc.wait(rng.uniform(4.0, 8.0))
        if operator.proc.poll() is None:
            operator.proc.send_signal(signal.SIGKILL)
        else:
            figures.crash_point_exits += 1
        operator.proc.wait(10)
        figures.kills += 1
    start_some(JOBS)
    survivor = operator_process()

    deadline = 120 + 2 * JOBS
    for name, execution in executions:
        status = scenarios[name].wait(stack.cp_client, execution, timeout=deadline)
        if status != expected[name]:
            figures.lost += 1
    figures.jobs = len(executions)
    jobs = [j for j in stack.codepipeline.jobs() if j.provider.startswith("Acme")]
    accepted = results_per_job(stack.codepipeline)
    figures.double_reports = sum(1 for j in jobs if accepted[j.job_id] > 1)
    figures.lost += sum(1 for j in jobs if accepted[j.job_id] == 0)
    figures.ran_twice = len(history.ran_more_than_once())
    figures.jobs_recreated_unreleased = len(history.created_more_than_once())

    def counted() -> bool:
        for name, _, end in WORKERS:
            status = (stack.cluster.worker(name) or {}).get("status") or {}
            want = sum(1 for n, _ in executions if n == name)
            got = status.get("succeeded" if end == "Succeeded" else "failed")
            other = status.get("failed" if end == "Succeeded" else "succeeded")
            if (got, other) != (want, 0):
                return False
        return True

    try:
        wait_for(counted, timeout=60, what="exact counters")
    except AssertionError:
        figures.counter_errors = 1
    try:
        wait_for(lambda: not stack.cluster.secrets(), timeout=30, what="every Secret deleted")
    except AssertionError:
        figures.leaked_secrets = len(stack.cluster.secrets())
    figures.leaked_secrets = max(figures.leaked_secrets, len(leaked_secrets(stack)))
    figures.seconds = round(time.monotonic() - began, 1)

    report = json.dumps({"seed": seed, **dataclasses.asdict(figures)})
    print(f"crash soak: {report}")
    if REPORT:
        Path(REPORT).write_text(report + "\n", encoding="utf-8")
    assert figures.kills == KILLS
    assert len(jobs) == figures.jobs == JOBS, report
    assert (figures.lost, figures.ran_twice, figures.double_reports) == (0, 0, 0), (
        f"{report}\n{survivor.output[-4000:]}"
    )
    assert (figures.leaked_secrets, figures.counter_errors) == (0, 0), report
    assert survivor.proc is not None
    assert survivor.proc.poll() is None, "the last operator runs on"
    failures = [r for r in caplog.records if r.name.startswith("cpworker.sandbox") and r.exc_info]
    assert not failures, "\n".join(  # a stand-in's own bug would show here
        logging.Formatter().formatException(r.exc_info) for r in failures if r.exc_info
    )
