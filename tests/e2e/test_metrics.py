"""Acceptance: the metrics move by the right amounts when pipelines run through the operator,
and no label ever carries a job id or a secret."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack, wait_for, worker_manifest
from tests.scrape import Scrape, scrape
from tests.unit.operator.samples import CANARY_CONFIG_VALUE

WORKER = {"namespace": "default", "worker": "builds"}


def jobs(metrics: Scrape, outcome: str, **labels: str) -> float:
    return metrics.value("cpworker_jobs_total", outcome=outcome, **WORKER, **labels)


def test_two_successes_move_the_counters_and_histograms_by_two(stack: Stack) -> None:
    scenario = stack.cp_scenario(
        actions=("Build", "Test"), secret_configuration={"ApiToken": CANARY_CONFIG_VALUE}
    )
    operator = stack.start_operator()
    url = str(operator.metrics_url)
    # Both actions are the same worker's jobs (one action type), one after the other.
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "300ms"})
    )
    wait_for(lambda: scrape(url).value("cpworker_worker_ready", **WORKER) == 1, what="Ready")
    before = scrape(url)

    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"

    def settled() -> Scrape | None:
        # The gauges are refreshed on the worker's next cycle, the counters at once.
        now = scrape(url)
        counted = jobs(now, "succeeded") - jobs(before, "succeeded") == 2
        idle = now.value("cpworker_worker_in_flight_jobs", **WORKER) == 0
        return now if counted and idle else None

    after = wait_for(settled, what="two jobs counted as succeeded, none in flight")
    assert jobs(after, "failed") == jobs(before, "failed")
    # Each job was dispatched once and reported once: the histograms saw two observations.
    for histogram, labels in (
        ("cpworker_job_dispatch_duration_seconds_count", {}),
        ("cpworker_job_stage_duration_seconds_count", {"stage": "report"}),
        ("cpworker_job_stage_duration_seconds_count", {"stage": "claim"}),
    ):
        moved = after.value(histogram, **WORKER, **labels) - before.value(
            histogram, **WORKER, **labels
        )
        assert moved == 2, (histogram, labels, moved)
    # The calls behind them, by operation and outcome.
    for operation in ("AcknowledgeJob", "PutJobSuccessResult"):
        moved = after.value(
            "cpworker_codepipeline_requests_total", operation=operation, outcome="ok"
        ) - before.value("cpworker_codepipeline_requests_total", operation=operation, outcome="ok")
        assert moved >= 2, operation
    assert after.value("cpworker_polls_total", **WORKER, result="jobs") >= 1
    assert after.value("cpworker_kubernetes_requests_total", resource="jobs", verb="create") >= 2
    # The Events on the worker tell the same story as the counters.
    reasons = stack.cluster.reasons_once(*["JobDispatched", "JobSucceeded"] * 2)
    assert reasons.count("JobDispatched") == 2
    assert reasons.count("JobSucceeded") == 2
    assert_no_job_ids_or_secrets(after, stack)


def test_a_failure_is_counted_by_its_type(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    operator = stack.start_operator()
    url = str(operator.metrics_url)
    stack.cluster.apply(
        worker_manifest(
            scenario,
            annotations={
                "sandbox.cpworker.io/duration": "200ms",
                "sandbox.cpworker.io/exit-code": "1",
                "sandbox.cpworker.io/termination-message": (
                    '{"failure": {"type": "PermissionError", "message": "denied"}}'
                ),
            },
        )
    )
    wait_for(lambda: scrape(url).value("cpworker_worker_ready", **WORKER) == 1, what="Ready")
    before = scrape(url)
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Failed"

    def counted() -> Scrape | None:
        now = scrape(url)
        moved = jobs(now, "failed", failure_type="PermissionError") - jobs(
            before, "failed", failure_type="PermissionError"
        )
        return now if moved == 1 else None

    after = wait_for(counted, what="one PermissionError counted")
    assert jobs(after, "succeeded") == jobs(before, "succeeded")
    assert_no_job_ids_or_secrets(after, stack)


def assert_no_job_ids_or_secrets(metrics: Scrape, stack: Stack) -> None:
    job_ids = {j["metadata"]["annotations"]["cpworker.io/job-id"] for j in stack.cluster.jobs()}
    assert job_ids, "the test ran no job"
    labels: set[Any] = set()
    for sample in metrics.samples():
        labels |= set(sample.labels.values())
    assert not labels & job_ids
    assert not any(job_id in metrics.text for job_id in job_ids)
    assert CANARY_CONFIG_VALUE not in metrics.text
