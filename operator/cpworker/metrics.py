"""The operator's Prometheus metrics: the whole catalogue, on a registry of its own.

Each operator instance owns one `Metrics` (two operators run side by side in the tests, so
nothing is ever registered on prometheus_client's global default registry). The stages call
its typed methods — `job_claimed`, `job_reported`, `worker_state`, ... — and never touch a
metric object, so names, labels and buckets are decided here, once.

Conventions (https://prometheus.io/docs/practices/naming/): `cpworker_` prefix, `_total`
counters, `_seconds` histograms, base units, and bounded labels only: `namespace` and
`worker` (names of CustomActionWorkers), plus enumerations fixed here (stage, outcome,
failure type, operation, verb, resource, region, reason). Never a job id, a nonce, a pipeline
name, an error message or anything secret: a label value outside an enumeration is folded
into "other".

The per-stage latencies come from timestamps on the Job record (`cpworker.timeline`), so they
are right after a restart too. docs/operations.md lists every metric and what to do about it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from importlib import metadata
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from cpworker import models
from cpworker.codepipeline import CallOutcome
from cpworker.kube import RequestOutcome
from cpworker.ratebudget import Lane, RateBudget
from cpworker.results import FAILURE_TYPES
from cpworker.timeline import CLAIM_STAGES, REPORT_STAGES, JobTimeline, Stage

PREFIX: Final = "cpworker_"
WORKER_LABELS: Final = ("namespace", "worker")
OTHER: Final = "other"


class JobOutcome(StrEnum):
    """How a job ended for this operator (the `outcome` label of `cpworker_jobs_total`)."""

    SUCCEEDED = "succeeded"  # PutJobSuccessResult without a continuation token
    FAILED = "failed"  # PutJobFailureResult (failure_type says which)
    CONTINUED = "continued"  # PutJobSuccessResult with a continuation token
    CANCELLED = "cancelled"  # CodePipeline no longer wanted it; the Job was deleted
    LOST_RACE = "lost_race"  # another worker acknowledged it first (InvalidNonceException)


# Reasons of the Ready condition: the model's, and the two the poller derives from
# CodePipeline errors it has no dedicated reason for.
READY_REASONS: Final = frozenset({reason.value for reason in models.Reason}) | {
    "InvalidRequest",
    "PollFailed",
}
CODEPIPELINE_OPERATIONS: Final = frozenset(
    {
        "PollForJobs",
        "AcknowledgeJob",
        "GetJobDetails",
        "PutJobSuccessResult",
        "PutJobFailureResult",
        "ListActionTypes",
        "GetPipeline",  # an event's pipeline: which worker's queryParam it matches
    }
)
KUBE_VERBS: Final = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)
KUBE_RESOURCES: Final = frozenset(
    {
        "jobs",
        "pods",
        "secrets",
        "events",
        "customactionworkers",
        "customactionworkers/status",
        "customresourcedefinitions",
        "namespaces",
        "nonresource",  # /version and other paths outside the resource API
    }
)

# Buckets, in seconds. Dispatch targets p50 <= 0.5 s, so the low end is fine-grained; stages
# span a pod start (seconds) to a custom action's 24-hour limit.
DISPATCH_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
STAGE_BUCKETS: Final = (
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    10800.0,
    86400.0,
)
REQUEST_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BUDGET_WAIT_BUCKETS: Final = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
# How late the operator's event loop runs a timer: a healthy loop is late by a millisecond or
# two; hundreds of milliseconds delay every worker, claim and report alike.
LOOP_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


def _version() -> str:
    try:
        return metadata.version("cpworker")
    except metadata.PackageNotFoundError:  # running from a source tree without metadata
        return "unknown"


class Metrics:
    """Every metric of one operator instance, on `self.registry`, behind typed methods.

    `clock` (seconds since the epoch) is only for tests; the ages it computes are taken at
    scrape time, so they are never stale.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.time,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock = clock
        # Per worker: when its oldest in-flight job was released (None: no job in flight).
        self._oldest: dict[tuple[str, str], float | None] = {}
        self._serving: set[tuple[str, str]] = set()
        self._reasons: dict[tuple[str, str], str] = {}  # the reason each worker's series shows
        if process_metrics:
            # The standard process_* / python_* metrics (memory is one of the targets).
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.build_info = Gauge(
            f"{PREFIX}build_info", "Always 1; the operator's version.", ["version"], registry=r
        )
        self.build_info.labels(_version()).set(1)

        # ---- jobs --------------------------------------------------------------------------
        self.jobs = Counter(
            f"{PREFIX}jobs",
            "Jobs this operator finished with CodePipeline, by outcome (failure_type for failed).",
            [*WORKER_LABELS, "outcome", "failure_type"],
            registry=r,
        )
        self.dispatch_duration = Histogram(
            f"{PREFIX}job_dispatch_duration_seconds",
            "From the job becoming available (poll or event) to its Kubernetes Job's release.",
            WORKER_LABELS,
            buckets=DISPATCH_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            f"{PREFIX}job_stage_duration_seconds",
            "Time in each stage of a job: create, claim, start, run, report.",
            [*WORKER_LABELS, "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            f"{PREFIX}polls",
            "PollForJobs rounds by result: jobs (returned some), empty, error.",
            [*WORKER_LABELS, "result"],
            registry=r,
        )

        # ---- workers (gauges, set by each worker's loop) -----------------------------------
        self.last_successful_poll = Gauge(
            f"{PREFIX}worker_last_successful_poll_timestamp_seconds",
            "When the worker's last poll succeeded (or it started being served), Unix time.",
            WORKER_LABELS,
            registry=r,
        )
        self.poll_max_interval = Gauge(
            f"{PREFIX}worker_poll_max_interval_seconds",
            "The worker's spec.polling.maxIntervalSeconds: its longest wait between polls.",
            WORKER_LABELS,
            registry=r,
        )
        self.in_flight = Gauge(
            f"{PREFIX}worker_in_flight_jobs",
            "Live Kubernetes Jobs of the worker (claiming or running, not yet reported).",
            WORKER_LABELS,
            registry=r,
        )
        self.max_in_flight = Gauge(
            f"{PREFIX}worker_max_in_flight_jobs",
            "The worker's spec.maxInFlight.",
            WORKER_LABELS,
            registry=r,
        )
        self.free_capacity = Gauge(
            f"{PREFIX}worker_free_capacity_jobs",
            "Jobs the worker may still take: maxInFlight minus in-flight (0 when paused).",
            WORKER_LABELS,
            registry=r,
        )
        self.ready = Gauge(
            f"{PREFIX}worker_ready",
            "1 when the worker's Ready condition is True, else 0.",
            WORKER_LABELS,
            registry=r,
        )
        self.ready_reason = Gauge(
            f"{PREFIX}worker_ready_reason",
            "1 for the reason of the worker's Ready condition (one series per worker).",
            [*WORKER_LABELS, "reason"],
            registry=r,
        )
        self.oldest_age = Gauge(
            f"{PREFIX}worker_oldest_in_flight_job_age_seconds",
            "Age of the worker's oldest in-flight job, from its release (0 when none).",
            WORKER_LABELS,
            registry=r,
        )
        self.job_deadline = Gauge(
            f"{PREFIX}worker_job_deadline_seconds",
            "activeDeadlineSeconds of the worker's Jobs.",
            WORKER_LABELS,
            registry=r,
        )

        # ---- API calls ---------------------------------------------------------------------
        self.codepipeline_requests = Counter(
            f"{PREFIX}codepipeline_requests",
            "CodePipeline call attempts (each retry counts) by operation and outcome.",
            ["region", "operation", "outcome"],
            registry=r,
        )
        self.codepipeline_duration = Histogram(
            f"{PREFIX}codepipeline_request_duration_seconds",
            "Duration of CodePipeline call attempts, rate-budget wait excluded.",
            ["region", "operation"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.budget_wait = Histogram(
            f"{PREFIX}codepipeline_rate_budget_wait_seconds",
            "Time a CodePipeline call waited for the shared rate budget of its region, by lane "
            "(urgent: claims, reports, probes, event-driven polls; poll: idle polls).",
            ["region", "lane"],
            buckets=BUDGET_WAIT_BUCKETS,
            registry=r,
        )
        self.budget_queued = Gauge(
            f"{PREFIX}codepipeline_rate_budget_queued_calls",
            "CodePipeline calls waiting for the rate budget of their region now, by lane.",
            ["region", "lane"],
            registry=r,
        )
        self.budget_stretch = Gauge(
            f"{PREFIX}codepipeline_rate_budget_idle_stretch",
            "Factor by which the rate budget stretches every idle poll interval (1: the "
            "workers' polling policies fit; above: polling is budget-limited).",
            ["region"],
            registry=r,
        )
        self._budgets: dict[str, list[RateBudget]] = {}
        self.kubernetes_requests = Counter(
            f"{PREFIX}kubernetes_requests",
            "Kubernetes API request attempts by the operator's client (kopf's watches excluded).",
            ["verb", "resource", "outcome"],
            registry=r,
        )

        # ---- the operator's event loop ------------------------------------------------------
        self.loop_lag = Histogram(
            f"{PREFIX}event_loop_lag_seconds",
            "How late the operator's event loop ran a timer (sampled every 0.25 s): the delay "
            "every worker loop, claim and report shares.",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )

        # ---- events (SQS) ------------------------------------------------------------------
        self.events_received = Counter(
            f"{PREFIX}events_received",
            "Action execution events received from the SQS queue.",
            registry=r,
        )
        self.events_acted_on = Counter(
            f"{PREFIX}events_acted_on",
            "Events that woke a worker to poll at once.",
            WORKER_LABELS,
            registry=r,
        )
        self._per_worker = (
            self.jobs,
            self.dispatch_duration,
            self.stage_duration,
            self.polls,
            self.last_successful_poll,
            self.poll_max_interval,
            self.in_flight,
            self.max_in_flight,
            self.free_capacity,
            self.ready,
            self.ready_reason,
            self.oldest_age,
            self.job_deadline,
            self.events_acted_on,
        )

    # ---- the stages ------------------------------------------------------------------------

    def poll_succeeded(self, namespace: str, worker: str, *, jobs: int) -> None:
        """A PollForJobs round answered (with `jobs` jobs)."""
        self.polls.labels(namespace, worker, "jobs" if jobs else "empty").inc()
        self.last_successful_poll.labels(namespace, worker).set(self._clock())

    def poll_failed(self, namespace: str, worker: str) -> None:
        """A PollForJobs round failed (after the client's retries)."""
        self.polls.labels(namespace, worker, "error").inc()

    def job_claimed(self, namespace: str, worker: str, timeline: JobTimeline) -> None:
        """The job was acknowledged (InProgress) and its Job released: dispatch is done.

        Call once per job, after the release is written (also when recovery releases it).
        """
        dispatch = timeline.dispatch_seconds()
        if dispatch is not None:
            self.dispatch_duration.labels(namespace, worker).observe(dispatch)
        self._observe_stages(namespace, worker, timeline.stage_seconds(CLAIM_STAGES))

    def job_lost_race(self, namespace: str, worker: str) -> None:
        """AcknowledgeJob answered InvalidNonceException: someone else runs the job."""
        self.jobs.labels(namespace, worker, JobOutcome.LOST_RACE.value, "").inc()

    def job_cancelled(self, namespace: str, worker: str) -> None:
        """CodePipeline no longer wanted a running job; its Kubernetes Job was deleted."""
        self.jobs.labels(namespace, worker, JobOutcome.CANCELLED.value, "").inc()

    def job_reported(
        self,
        namespace: str,
        worker: str,
        outcome: JobOutcome,
        timeline: JobTimeline,
        *,
        failure_type: str | None = None,
    ) -> None:
        """A result was accepted (or the job had already ended) and the Job marked reported.

        `outcome` is SUCCEEDED, FAILED (with `failure_type`) or CONTINUED. Call once per job,
        after `phase: reported` (and `reported-at`) is written.
        """
        failure = _bounded(failure_type or "JobFailed", FAILURE_TYPES)
        self.jobs.labels(
            namespace, worker, outcome.value, failure if outcome is JobOutcome.FAILED else ""
        ).inc()
        self._observe_stages(namespace, worker, timeline.stage_seconds(REPORT_STAGES))

    def _observe_stages(self, namespace: str, worker: str, seconds: Mapping[Stage, float]) -> None:
        for stage, value in seconds.items():
            self.stage_duration.labels(namespace, worker, stage.value).observe(value)

    def worker_state(
        self,
        namespace: str,
        worker: str,
        *,
        ready: bool,
        reason: str,
        in_flight: int,
        max_in_flight: int,
        paused: bool,
        oldest_in_flight_since: dt.datetime | None,
        job_deadline_seconds: float | None,
        poll_max_interval_seconds: float | None,
    ) -> None:
        """A worker's current state (call on every status round of its loop).

        `oldest_in_flight_since`: release time of its oldest live Job (None: none in flight).
        `job_deadline_seconds` and `poll_max_interval_seconds` come from the spec (None when
        the spec is invalid); the deadline and no-successful-poll alerts compare with them.

        The first call for a worker also starts its "last successful poll" clock, so that a
        worker that never manages to poll shows up in the no-successful-poll alert.
        """
        key = (namespace, worker)
        if key not in self._serving:
            self._serving.add(key)
            self.last_successful_poll.labels(namespace, worker).set(self._clock())
            # The age is computed when scraped, so it is never as old as the last round.
            self.oldest_age.labels(namespace, worker).set_function(lambda: self._age(key))
        self.in_flight.labels(namespace, worker).set(in_flight)
        self.max_in_flight.labels(namespace, worker).set(max_in_flight)
        self.free_capacity.labels(namespace, worker).set(
            0 if paused else max(0, max_in_flight - in_flight)
        )
        self.ready.labels(namespace, worker).set(1 if ready else 0)
        reason = _bounded(reason, READY_REASONS)
        # One series per worker: the old reason's goes when the reason changes (by its labels:
        # remove_by_labels scans every series, which at a thousand workers was a fifth of the
        # operator's idle CPU).
        shown = self._reasons.get(key)
        if shown != reason:
            if shown is not None:
                self.ready_reason.remove(namespace, worker, shown)
            self._reasons[key] = reason
        self.ready_reason.labels(namespace, worker, reason).set(1)
        if job_deadline_seconds is not None:
            self.job_deadline.labels(namespace, worker).set(job_deadline_seconds)
        if poll_max_interval_seconds is not None:
            self.poll_max_interval.labels(namespace, worker).set(poll_max_interval_seconds)
        self._oldest[key] = (
            None if oldest_in_flight_since is None else oldest_in_flight_since.timestamp()
        )

    def _age(self, key: tuple[str, str]) -> float:
        since = self._oldest.get(key)
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def forget_worker(self, namespace: str, worker: str) -> None:
        """Remove every series of a worker (call when the worker resource is gone)."""
        labels = {"namespace": namespace, "worker": worker}
        for metric in self._per_worker:
            metric.remove_by_labels(labels)
        key = (namespace, worker)
        self._serving.discard(key)
        self._oldest.pop(key, None)
        self._reasons.pop(key, None)

    # ---- events ----------------------------------------------------------------------------

    def event_received(self) -> None:
        """One message arrived on the events queue."""
        self.events_received.inc()

    def event_acted_on(self, namespace: str, worker: str) -> None:
        """An event made this worker poll at once."""
        self.events_acted_on.labels(namespace, worker).inc()

    # ---- client observers (codepipeline.CallObserver, kube.RequestObserver) -----------------

    def codepipeline_call(
        self, *, region: str, operation: str, outcome: CallOutcome, seconds: float
    ) -> None:
        operation = _bounded(operation, CODEPIPELINE_OPERATIONS)
        self.codepipeline_requests.labels(region, operation, outcome.value).inc()
        self.codepipeline_duration.labels(region, operation).observe(seconds)

    def rate_budget_wait(self, *, region: str, seconds: float, lane: Lane = Lane.URGENT) -> None:
        self.budget_wait.labels(region, lane.label).observe(seconds)

    def rate_budget_created(self, *, region: str, budget: RateBudget) -> None:
        """A rate budget (one per account and region) exists: its queues and stretch are read
        when scraped (budgets of several accounts in one region add up)."""
        budgets = self._budgets.setdefault(region, [])
        budgets.append(budget)
        if len(budgets) > 1:
            return

        def queued(lane: Lane) -> Callable[[], float]:
            return lambda: float(sum(b.queued(lane) for b in budgets))

        for lane in Lane:
            self.budget_queued.labels(region, lane.label).set_function(queued(lane))
        self.budget_stretch.labels(region).set_function(
            lambda: max((b.stretch for b in budgets), default=1.0)
        )

    def event_loop_lag(self, seconds: float) -> None:
        """The event loop ran a timer `seconds` late."""
        self.loop_lag.observe(seconds)

    def kubernetes_request(self, *, verb: str, resource: str, outcome: RequestOutcome) -> None:
        self.kubernetes_requests.labels(
            _bounded(verb, KUBE_VERBS), _bounded(resource, KUBE_RESOURCES), outcome.value
        ).inc()
