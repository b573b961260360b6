"""Two operators shard one namespace by label selector: each serves its own workers and acts
only on its own workers' Jobs (docs/scaling.md)."""

from __future__ import annotations

import functools
from typing import Any

from cpworker import names
from tests.e2e.conftest import Stack, wait_for, worker_manifest

DURATION = {"sandbox.cpworker.io/duration": "300ms"}


def sharded_worker(scenario: Any, name: str, shard: str) -> dict[str, Any]:
    manifest = worker_manifest(scenario, name, annotations=DURATION)
    manifest["metadata"]["labels"] = {"shard": shard}
    return manifest


def test_two_shards_split_the_workers_and_each_reports_only_its_own_jobs(stack: Stack) -> None:
    scenarios = {
        shard: stack.cp_scenario(actions=("Build", "Test"), pool=f"pool-{shard}")
        for shard in ("a", "b")
    }
    operators = {
        shard: stack.start_operator(worker_selector=f"shard={shard}") for shard in ("a", "b")
    }
    for shard, scenario in scenarios.items():
        stack.cluster.apply(sharded_worker(scenario, f"builds-{shard}", shard))
    for shard in ("a", "b"):
        wait_for(functools.partial(ready, stack, shard), what=f"worker builds-{shard} Ready")
    # Each operator runs the loop of its own shard's worker, and only that one.
    for shard, operator in operators.items():
        assert operator.runtime is not None
        served = {w.name for w in operator.runtime.running_workers()}
        assert served == {f"builds-{shard}"}, (shard, served)

    executions = {shard: s.start(stack.cp_client) for shard, s in scenarios.items()}
    for shard, scenario in scenarios.items():
        assert scenario.wait(stack.cp_client, executions[shard], timeout=90) == "Succeeded"

    jobs = stack.cluster.jobs()
    assert len(jobs) == 4  # two custom actions per pipeline, one Kubernetes Job each
    # The record is written after the result (the pipeline may move on before it lands).
    jobs = wait_for(
        lambda: (
            (now := stack.cluster.jobs())
            and all(a.get(names.ANNOTATION_PHASE) == "reported" for a in _annotations(now))
            and now
        ),
        what="every Job recorded as reported",
    )
    reporters = {
        shard: operator.runtime.reporter.reporter_id
        for shard, operator in operators.items()
        if operator.runtime is not None
    }
    for job in jobs:
        annotations = job["metadata"]["annotations"]
        shard = annotations[names.ANNOTATION_WORKER].removeprefix("builds-")
        # Both operators watch every labelled Job of the namespace; the result was sent by
        # the operator that serves the Job's worker (its record says who), never the other.
        assert annotations[names.ANNOTATION_REPORTER].split()[0] == reporters[shard], job[
            "metadata"
        ]["name"]
    results = [
        r.job_id
        for r in stack.codepipeline.requests()
        if r.operation in {"PutJobSuccessResult", "PutJobFailureResult"}
    ]
    assert sorted(results) == sorted(a[names.ANNOTATION_JOB_ID] for a in _annotations(jobs))
    for shard in ("a", "b"):
        wait_for(
            functools.partial(succeeded, stack, shard, 2), what=f"builds-{shard} succeeded == 2"
        )


def ready(stack: Stack, shard: str) -> bool:
    return (stack.cluster.condition(f"builds-{shard}") or {}).get("status") == "True"


def succeeded(stack: Stack, shard: str, count: int) -> bool:
    status = (stack.cluster.worker(f"builds-{shard}") or {}).get("status") or {}
    return status.get("succeeded") == count


def _annotations(jobs: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [job["metadata"]["annotations"] for job in jobs]
