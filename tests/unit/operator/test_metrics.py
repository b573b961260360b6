"""cpworker.metrics: the catalogue, read back through prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import prometheus_client
import pytest
from prometheus_client import generate_latest

from cpworker import health
from cpworker.codepipeline import CallOutcome
from cpworker.kube import RequestOutcome
from cpworker.metrics import JobOutcome, Metrics
from cpworker.ratebudget import Lane, RateBudget
from cpworker.timeline import JobTimeline
from tests.scrape import Scrape

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
# Every label any cpworker_ metric may carry: names of workers and fixed enumerations.
ALLOWED_LABELS = {
    "namespace",
    "worker",
    "outcome",
    "failure_type",
    "stage",
    "result",
    "reason",
    "region",
    "operation",
    "verb",
    "resource",
    "version",
    "lane",
    "le",
}


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def read(metrics: Metrics) -> Scrape:
    return Scrape(generate_latest(metrics.registry).decode())


def after(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def state(metrics: Metrics, worker: str = "gpu", **overrides: Any) -> None:
    """worker_state with a healthy, idle worker's values unless overridden."""
    values: dict[str, Any] = {
        "ready": True,
        "reason": "Polling",
        "in_flight": 0,
        "max_in_flight": 5,
        "paused": False,
        "oldest_in_flight_since": None,
        "job_deadline_seconds": 3300,
        "poll_max_interval_seconds": 60,
    }
    metrics.worker_state("ci", worker, **{**values, **overrides})


def exercise(metrics: Metrics) -> None:
    """One of each call, for tests about the whole exposition."""
    timeline = JobTimeline(
        available=after(0), created=after(1), claimed=after(1.5), started=after(4),
        finished=after(64), reported=after(64.25),
    )  # fmt: skip
    metrics.poll_succeeded("ci", "gpu", jobs=1)
    metrics.poll_failed("ci", "gpu")
    metrics.job_claimed("ci", "gpu", timeline)
    metrics.job_reported("ci", "gpu", JobOutcome.SUCCEEDED, timeline)
    metrics.job_reported("ci", "gpu", JobOutcome.FAILED, timeline, failure_type="JobFailed")
    metrics.job_lost_race("ci", "gpu")
    metrics.job_cancelled("ci", "gpu")
    state(metrics, in_flight=2, oldest_in_flight_since=after(0))
    metrics.event_received()
    metrics.event_acted_on("ci", "gpu")
    metrics.codepipeline_call(
        region="us-east-1", operation="PollForJobs", outcome=CallOutcome.OK, seconds=0.02
    )
    metrics.rate_budget_wait(region="us-east-1", seconds=0.0)
    metrics.kubernetes_request(verb="create", resource="jobs", outcome=RequestOutcome.OK)


def test_names_follow_prometheus_conventions_and_labels_are_bounded() -> None:
    metrics = Metrics(clock=Clock())
    exercise(metrics)
    scrape = read(metrics)
    families = scrape.families()
    ours = {name: kind for name, kind in families.items() if name.startswith("cpworker_")}
    assert len(ours) >= 20
    assert {name for name in families if not name.startswith("cpworker_")} <= {
        name for name in families if name.startswith(("process_", "python_"))
    }
    for name, kind in ours.items():
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        if kind == "counter":
            assert any(s.name == f"{name}_total" for s in scrape.samples()), name
    labels = {
        label for s in scrape.samples() if s.name.startswith("cpworker_") for label in s.labels
    }
    assert labels <= ALLOWED_LABELS


def test_each_operator_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.job_lost_race("ci", "gpu")
    assert read(first).value("cpworker_jobs_total") == 1
    assert read(second).value("cpworker_jobs_total") == 0
    default = generate_latest(prometheus_client.REGISTRY).decode()
    assert "cpworker_" not in default


def test_job_outcomes_and_failure_types() -> None:
    metrics = Metrics()
    empty = JobTimeline()
    metrics.job_reported("ci", "gpu", JobOutcome.SUCCEEDED, empty)
    metrics.job_reported("ci", "gpu", JobOutcome.CONTINUED, empty)
    metrics.job_reported("ci", "gpu", JobOutcome.FAILED, empty, failure_type="ConfigurationError")
    metrics.job_reported("ci", "gpu", JobOutcome.FAILED, empty, failure_type="made up")
    metrics.job_reported("ci", "gpu", JobOutcome.FAILED, empty)
    metrics.job_lost_race("ci", "gpu")
    metrics.job_cancelled("ci", "gpu")
    scrape = read(metrics)
    jobs = "cpworker_jobs_total"
    assert scrape.value(jobs, outcome="succeeded", failure_type="") == 1
    assert scrape.value(jobs, outcome="continued") == 1
    assert scrape.value(jobs, outcome="failed", failure_type="ConfigurationError") == 1
    assert scrape.value(jobs, outcome="failed", failure_type="other") == 1
    assert scrape.value(jobs, outcome="failed", failure_type="JobFailed") == 1
    assert scrape.value(jobs, outcome="lost_race") == 1
    assert scrape.value(jobs, outcome="cancelled") == 1
    assert scrape.value(jobs, namespace="ci", worker="gpu") == 7


def test_stage_latencies_are_observed_when_each_stage_is_known() -> None:
    metrics = Metrics()
    timeline = JobTimeline(
        available=after(0), created=after(1), claimed=after(1.5), started=after(4),
        finished=after(64), reported=after(64.25),
    )  # fmt: skip
    metrics.job_claimed("ci", "gpu", timeline)
    scrape = read(metrics)
    stage = "cpworker_job_stage_duration_seconds"
    assert scrape.value("cpworker_job_dispatch_duration_seconds_count") == 1
    assert scrape.value("cpworker_job_dispatch_duration_seconds_sum") == pytest.approx(1.5)
    assert scrape.value("cpworker_job_dispatch_duration_seconds_bucket", le="1.0") == 0
    assert scrape.value("cpworker_job_dispatch_duration_seconds_bucket", le="2.0") == 1
    assert scrape.value(f"{stage}_sum", stage="create") == pytest.approx(1.0)
    assert scrape.value(f"{stage}_sum", stage="claim") == pytest.approx(0.5)
    assert scrape.value(f"{stage}_count", stage="run") == 0  # not finished yet
    metrics.job_reported("ci", "gpu", JobOutcome.SUCCEEDED, timeline)
    scrape = read(metrics)
    assert scrape.value(f"{stage}_sum", stage="start") == pytest.approx(2.5)
    assert scrape.value(f"{stage}_sum", stage="run") == pytest.approx(60.0)
    assert scrape.value(f"{stage}_sum", stage="report") == pytest.approx(0.25)
    assert scrape.value(f"{stage}_count") == 5  # each stage once: nothing observed twice
    assert scrape.value("cpworker_job_dispatch_duration_seconds_count") == 1


def test_worker_state_gauges_and_ages_taken_at_scrape_time() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    state(
        metrics,
        ready=False,
        reason="Throttled",
        in_flight=3,
        oldest_in_flight_since=T0,
        job_deadline_seconds=600,
        poll_max_interval_seconds=120,
    )
    clock.now += 90
    scrape = read(metrics)
    assert scrape.value("cpworker_worker_in_flight_jobs", worker="gpu") == 3
    assert scrape.value("cpworker_worker_max_in_flight_jobs", worker="gpu") == 5
    assert scrape.value("cpworker_worker_free_capacity_jobs", worker="gpu") == 2
    assert scrape.value("cpworker_worker_ready", worker="gpu") == 0
    assert scrape.value("cpworker_worker_ready_reason", reason="Throttled") == 1
    assert scrape.value("cpworker_worker_oldest_in_flight_job_age_seconds") == 90
    assert scrape.value("cpworker_worker_job_deadline_seconds") == 600
    assert scrape.value("cpworker_worker_poll_max_interval_seconds") == 120
    # The no-successful-poll clock starts when the worker is first served.
    assert scrape.value("cpworker_worker_last_successful_poll_timestamp_seconds") == T0.timestamp()

    metrics.poll_succeeded("ci", "gpu", jobs=0)
    state(metrics)
    state(metrics, "idle", ready=False, reason="SomethingNew", in_flight=1, paused=True)
    scrape = read(metrics)
    assert scrape.value("cpworker_worker_ready_reason", worker="gpu") == 1  # one series only
    assert scrape.value("cpworker_worker_ready_reason", worker="gpu", reason="Polling") == 1
    assert scrape.value("cpworker_worker_ready_reason", worker="idle", reason="other") == 1
    assert scrape.value("cpworker_worker_oldest_in_flight_job_age_seconds", worker="gpu") == 0
    assert scrape.value("cpworker_worker_free_capacity_jobs", worker="idle") == 0
    assert scrape.value("cpworker_worker_last_successful_poll_timestamp_seconds", worker="gpu") == (
        clock.now
    )
    assert scrape.value("cpworker_polls_total", result="empty") == 1


def test_forget_worker_removes_only_that_workers_series() -> None:
    metrics = Metrics(clock=Clock())
    exercise(metrics)
    state(metrics, "other")
    metrics.forget_worker("ci", "gpu")
    scrape = read(metrics)
    assert "gpu" not in scrape.label_values("worker")
    assert scrape.label_values("worker") == {"other"}
    # Operator-wide series stay.
    assert scrape.value("cpworker_codepipeline_requests_total") == 1
    assert scrape.value("cpworker_events_received_total") == 1
    # A worker that comes back is served afresh.
    state(metrics)
    assert read(metrics).value("cpworker_worker_ready", worker="gpu") == 1


def test_api_call_labels_are_folded_into_known_values() -> None:
    metrics = Metrics()
    for outcome in CallOutcome:
        metrics.codepipeline_call(
            region="us-east-1", operation="PollForJobs", outcome=outcome, seconds=0.1
        )
    metrics.codepipeline_call(
        region="us-east-1", operation="Bogus", outcome=CallOutcome.OK, seconds=0.1
    )
    metrics.rate_budget_wait(region="us-east-1", seconds=0.5)
    metrics.kubernetes_request(verb="get", resource="configmaps", outcome=RequestOutcome.NOT_FOUND)
    scrape = read(metrics)
    requests = "cpworker_codepipeline_requests_total"
    assert scrape.value(requests, operation="PollForJobs", outcome="throttled") == 1
    assert scrape.value(requests, operation="other") == 1
    assert scrape.value("cpworker_codepipeline_request_duration_seconds_count") == 4
    assert scrape.value("cpworker_codepipeline_rate_budget_wait_seconds_sum") == 0.5
    assert (
        scrape.value(
            "cpworker_kubernetes_requests_total", verb="get", resource="other", outcome="not_found"
        )
        == 1
    )


async def test_rate_budget_waits_and_queues_by_lane() -> None:
    metrics = Metrics()
    budget = RateBudget(rate=1.0, burst=1)
    metrics.rate_budget_created(region="us-east-1", budget=budget)
    metrics.rate_budget_wait(region="us-east-1", seconds=0.2, lane=Lane.POLL)
    await budget.acquire(Lane.URGENT)  # the only token
    waiting = asyncio.ensure_future(budget.acquire(Lane.POLL))
    await asyncio.sleep(0)
    scrape = read(metrics)
    wait = "cpworker_codepipeline_rate_budget_wait_seconds_sum"
    assert scrape.value(wait, lane="poll") == 0.2
    queued = "cpworker_codepipeline_rate_budget_queued_calls"
    assert scrape.value(queued, region="us-east-1", lane="poll") == 1
    assert scrape.value(queued, region="us-east-1", lane="urgent") == 0
    assert scrape.value("cpworker_codepipeline_rate_budget_idle_stretch") == 1
    waiting.cancel()


def test_event_loop_lag_is_a_histogram() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.002, 0.3):
        metrics.event_loop_lag(seconds)
    scrape = read(metrics)
    assert scrape.value("cpworker_event_loop_lag_seconds_count") == 3
    assert scrape.value("cpworker_event_loop_lag_seconds_bucket", le="0.25") == 2


async def test_the_lag_watcher_reports_how_late_its_timer_ran() -> None:
    seen: list[float] = []
    task = asyncio.ensure_future(health.watch_loop_lag(seen.append, interval=0.01))
    await asyncio.sleep(0.02)
    time.sleep(0.1)  # noqa: ASYNC251 - blocking the loop is the point: the timer runs late
    await asyncio.sleep(0.03)
    task.cancel()
    assert seen
    assert max(seen) >= 0.05
