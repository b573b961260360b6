"""Acceptance: no cpworker Secret (artifact credentials, secret configuration) outlives its Job
or the job's end.

The operator may not list Secrets; the sweeper (cpworker/secretsweeper.py) finds them from the
Job index. The first two cases left a Secret behind before it: forever (a claiming Job deleted
with orphan propagation), or until the Job's TTL (a crash between the record and the Secret's
deletion).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from cpworker.runtime import CRASH_EXIT_CODE
from tests.e2e.conftest import Stack, wait_for, worker_manifest

FAST_JOB = {"sandbox.cpworker.io/duration": "300ms"}


def test_a_claiming_job_deleted_with_orphan_propagation_does_not_leave_its_secret(
    stack: Stack,
) -> None:
    scenario = stack.cp_scenario()
    stack.codepipeline.faults.set("AcknowledgeJob", latency=3.0)  # a claim that takes a while
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario, annotations=FAST_JOB))
    scenario.start(stack.cp_client)
    [secret] = wait_for(stack.cluster.secrets, what="the claiming Job's Secret")
    name = secret["metadata"]["name"]
    # A user (or a client deleting a batch/v1 Job without a propagationPolicy) orphans it.
    stack.cluster.kubectl("delete", "job", name, "--cascade=orphan", "--wait=false")
    started = time.monotonic()
    wait_for(lambda: not stack.cluster.secrets(), timeout=20, what="the orphaned Secret deleted")
    print(f"orphaned Secret deleted {time.monotonic() - started:.2f} s after its Job")


def test_a_crash_between_the_record_and_the_secret_does_not_leave_it(
    stack: Stack, operator_process: Any
) -> None:
    scenario = stack.cp_scenario()
    stack.cluster.apply(worker_manifest(scenario, annotations=FAST_JOB))
    execution = scenario.start(stack.cp_client)
    crashing = operator_process(crash_at="after-record")
    assert crashing.wait_exit(timeout=60) == CRASH_EXIT_CODE, crashing.output[-3000:]
    assert scenario.status(stack.cp_client, execution) == "Succeeded"
    [job] = stack.cluster.jobs()
    assert job["metadata"]["annotations"]["cpworker.io/phase"] == "reported"
    assert stack.cluster.secrets(), "the crash left the Secret"
    operator_process()
    wait_for(lambda: not stack.cluster.secrets(), timeout=20, what="the Secret deleted")
    assert stack.cluster.jobs(), "long before the Job's TTL"


@pytest.mark.kube_standin(gc_delay=60.0)
def test_a_running_job_deleted_while_gc_lags_takes_its_secret_at_once(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "30s"})
    )
    scenario.start(stack.cp_client)
    [secret] = wait_for(stack.cluster.secrets, what="the job's Secret")
    wait_for(stack.cluster.pods, what="its pod")
    stack.cluster.request(
        "DELETE",
        f"/apis/batch/v1/namespaces/default/jobs/{secret['metadata']['name']}",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    wait_for(lambda: not stack.cluster.secrets(), timeout=20, what="the Secret deleted")
    assert stack.cluster.pods(), "the garbage collector has not run yet (it lags 60 s)"
    # Failed at once, not when the garbage collector comes.
    assert "JobFailed" in stack.cluster.reasons_once("JobFailed", timeout=20)
