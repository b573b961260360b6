"""The measurements of one run: an idle fleet, a burst (operator and raw loop), the baselines.

Each phase gets a namespace and a custom action type of its own, so no phase can see or take
another's work, and each figure is read from the stand-ins over the phase's own time window:
CodePipeline calls from the local CodePipeline's request log, Kubernetes writes from the
local Kubernetes' audit log (by the caller's identity), SQS calls from the counting proxy, and
the moments of every Job from the observer. Nothing here asserts: it measures and returns.
"""

from __future__ import annotations

import collections
import json
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpworker import models
from cpworker.bench import opmetrics, policies
from cpworker.bench.harness import OPERATOR_USER, RAW_USER, Harness
from cpworker.bench.observer import WRITE_VERBS, requests_by_verb, writes_by_resource
from cpworker.bench.plan import Plan
from cpworker.bench.processes import LivenessProbe, Subprocess, free_port, operator_process
from cpworker.bench.procstat import (
    CpuWindow,
    memory_mib,
    process_cpu_seconds,
    thread_cpu_seconds,
)
from cpworker.bench.progress import Progress
from cpworker.bench.workload import (
    REGION,
    create_fleet,
    pool_name,
    set_paused,
    worker_manifest,
    worker_name,
)
from cpworker.settings import OperatorSettings

# Text logs at WARNING: the benchmark measures the operator's work, not its INFO logging.
OPERATOR_BASE_SETTINGS: dict[str, Any] = {
    "log_format": "text",
    "log_level": "WARNING",
    "default_region": REGION,
}
# Calls that exist because of a job (claims, reports, refreshes, probes); the rest is polling.
PER_JOB_OPERATIONS = frozenset(
    {"AcknowledgeJob", "GetJobDetails", "PutJobSuccessResult", "PutJobFailureResult"}
)
TICK = 0.1
# How often a phase checks whether it is done: each check reads the stand-ins' state on their
# own loops, so checking less often keeps the benchmark from loading what it measures.
CHECK_INTERVAL = 0.5
# Once a phase's figures are taken, its process gets this long to exit before it is killed:
# kopf's graceful shutdown of a thousand daemons is not what the benchmark measures.
STOP_GRACE = 1.0


class BenchError(RuntimeError):
    """A phase could not be measured (the message says what to look at)."""


def operator_reads_events() -> bool:
    """Whether this operator has the setting that makes it consume the events queue."""
    return "events_queue_url" in OperatorSettings.model_fields


def scaled_interval(plan: Plan) -> int | None:
    """Our workers' idle ceiling under the plan's time scale (None: the spec's default)."""
    if plan.time_scale == 1:
        return None
    return max(1, round(models.DEFAULT_MAX_INTERVAL_SECONDS / plan.time_scale))


@dataclass
class Latencies:
    """Per job: CodePipeline created -> Kubernetes Job created / released; finished -> result."""

    started: int = 0
    dispatched: int = 0
    reported: int = 0
    dispatch: list[float] = field(default_factory=list)
    released: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)
    # Some jobs were not dispatched (reported) in time: their wait so far counts, so the
    # dispatch (report) figures are lower bounds.
    lower_bound: bool = False
    release_lower_bound: bool = False
    report_lower_bound: bool = False


def latencies(h: Harness, provider: str) -> Latencies:
    now = time.time()
    moments = h.observer.job_moments()
    result = Latencies()
    for job in h.cp_jobs(provider):
        result.started += 1
        seen = moments.get(job.job_id)
        if seen is None:
            result.dispatch.append(now - job.created)
            result.released.append(now - job.created)
            result.lower_bound = result.release_lower_bound = True
            continue
        result.dispatched += 1
        result.dispatch.append(seen.created - job.created)
        if seen.released is not None:
            result.released.append(seen.released - job.created)
        else:
            result.released.append(now - job.created)
            result.release_lower_bound = True
        if seen.finished is None:
            continue
        if job.finished is not None and job.status != "TimedOut":
            result.reported += 1
            result.report.append(job.finished - seen.finished)
        else:
            result.report.append(now - seen.finished)
            result.report_lower_bound = True
    return result


def _settled(h: Harness, provider: str, expected: int, *, reported: bool) -> bool:
    """All `expected` jobs exist, have a Kubernetes Job and (if `reported`) a result."""
    moments = h.observer.job_moments()
    jobs = h.cp_jobs(provider)
    if len(jobs) < expected:
        return False
    for job in jobs:
        if job.job_id not in moments:
            return False
        if reported and job.finished is None:
            return False
    return True


def _wait_reported(
    h: Harness,
    provider: str,
    expected: int,
    timeout: float,
    *,
    progress: Progress,
    operator: Subprocess,
) -> bool:
    """Wait until the phase's jobs are all dispatched and reported (or `timeout`)."""
    return _wait(
        lambda: _settled(h, provider, expected, reported=True),
        timeout,
        tick=lambda: progress.update(f"{latencies(h, provider).reported}/{expected} reported"),
        alive=operator,
    )


@dataclass
class StandInMeter:
    """CPU seconds of the stand-ins' loops and the requests they answered, over phases."""

    cpu: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    bench_cpu: float = 0.0
    wall: float = 0.0
    _start: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return bool(self._start)

    def begin(self, h: Harness) -> None:
        self._start = {
            "threads": {n: thread_cpu_seconds(t) for n, t in h.standin_threads().items()},
            "cp": len(h.codepipeline.requests()),
            "kube": h.kube_requests_total(),
            "bench": process_cpu_seconds(os.getpid()),
            "wall": time.monotonic(),
        }

    def end(self, h: Harness) -> None:
        start = self._start
        for name, tid in h.standin_threads().items():
            self.cpu[name] += thread_cpu_seconds(tid) - start["threads"].get(name, 0.0)
        self.requests["codepipeline"] += len(h.codepipeline.requests()) - start["cp"]
        self.requests["kubernetes"] += h.kube_requests_total() - start["kube"]
        self.bench_cpu += process_cpu_seconds(os.getpid()) - start["bench"]
        self.wall += time.monotonic() - start["wall"]
        self._start = {}


def _wait(
    what: Callable[[], bool],
    timeout: float,
    *,
    tick: Callable[[], None] | None = None,
    alive: Subprocess | None = None,
) -> bool:
    """Poll `what` until true or `timeout`; fail when `alive` (a measured process) died."""
    deadline = time.monotonic() + timeout
    while True:
        if what():
            return True
        if alive is not None and not alive.running():
            raise BenchError(
                f"the measured process exited early (status {alive.proc and alive.proc.poll()});"
                f" its log ({alive.log_path}) ends with:\n{alive.tail()}"
            )
        if tick is not None:
            tick()
        if time.monotonic() > deadline:
            return False
        time.sleep(CHECK_INTERVAL)


# ---------------------------------------------------------------------------------------------
# P4 and issue 17: an idle fleet on one replica; P1/P2 from jobs started while it idles
# ---------------------------------------------------------------------------------------------


@dataclass
class IdleResult:
    mode: str  # "polling" or "events"
    workers: int
    settings: dict[str, Any]
    ready_seconds: list[float]  # from the operator's start, one per Ready worker
    all_ready: bool
    startup_seconds: float
    startup_writes: dict[str, int]
    window: Window
    lag_failures: int
    latencies: Latencies
    profile: Path | None = None
    events_delivered: int | None = None  # messages the stand-in put on the events queue
    # From the operator's start until every worker had polled once (its first polls are
    # spread over what the rate budget carries): the idle window starts after it.
    steady_seconds: float = 0.0
    steady: bool = True
    startup_calls: dict[str, int] = field(default_factory=dict)


def _distinct_pools(rng: random.Random, workers: int, jobs: int) -> list[int]:
    """A pool per job, distinct while there are enough, so that every job waits for its own
    worker's next poll (and not also for another job of the same pool): the same workload for
    our operator and for each baseline model."""
    pools = rng.sample(range(workers), min(jobs, workers))
    return pools + [rng.randrange(workers) for _ in range(jobs - len(pools))]


@dataclass
class Window:
    """What the operator did while the fleet idled."""

    seconds: float
    rss_mib: float
    rss_peak_mib: float
    cpu_share: float
    lag_seconds: list[float]
    codepipeline_calls: dict[str, int]
    kubernetes_writes: dict[str, int]
    sqs_calls: dict[str, int]
    # Polls of the workers that had no job in the window: what an idle worker costs.
    idle_worker_polls: int = 0
    idle_workers: int = 0
    operator_metrics: dict[str, Any] = field(default_factory=dict)


def _idle_workload(
    h: Harness,
    plan: Plan,
    *,
    workers: int,
    jobs: int,
    namespace: str,
    provider: str,
    rng: random.Random,
    labels: Callable[[int], dict[str, str]] | None = None,
) -> tuple[dict[str, str], list[int]]:
    """The action type, the fleet (all its workers' pools; `labels` per worker) and the pools
    `jobs` jobs will start on."""
    action = h.workload.action_type(provider)
    pools = _distinct_pools(rng, workers, jobs)
    for index in set(pools):
        h.workload.pipeline(action, pool_name(index))
    interval = scaled_interval(plan)
    manifests = [
        worker_manifest(
            i,
            namespace,
            action,
            max_interval=interval,
            job_duration=plan.job_duration,
            labels=labels(i) if labels is not None else None,
        )
        for i in range(workers)
    ]
    create_fleet(h.kube, namespace, manifests)
    return action, pools


def polled_pools(h: Harness, since: float) -> set[str]:
    """The pools (queryParam values) polled since `since`, from the stand-in's request log."""
    return {
        r.query for r in h.cp_requests(since, math.inf) if r.operation == "PollForJobs" and r.query
    }


def _idle_window(
    h: Harness,
    plan: Plan,
    *,
    operator: Subprocess,
    probe: LivenessProbe,
    port: int,
    namespace: str,
    workers: int,
    start_job: Callable[[int], object],
    pools: Sequence[int],
    rng: random.Random,
    progress: Progress,
) -> Window:
    """Start a job on each of `pools` at random moments of the window; measure meanwhile."""
    metrics_before = opmetrics.scrape(port)
    w0 = time.time()
    cpu = CpuWindow(operator.pid).start()
    due = sorted((w0 + rng.uniform(0, plan.idle_seconds), pool) for pool in pools)
    rss: list[float] = []
    next_sample = w0
    while (now := time.time()) < w0 + plan.idle_seconds:
        while due and due[0][0] <= now:
            start_job(due.pop(0)[1])
        if now >= next_sample:
            rss.append(memory_mib(operator.pid)[0])
            next_sample = now + 1.0
            progress.update(
                f"idle window {now - w0:4.0f}/{plan.idle_seconds:.0f} s, "
                f"{len(pools) - len(due)} jobs started"
            )
        if not operator.running():
            raise BenchError(f"the operator exited during the idle window:\n{operator.tail()}")
        time.sleep(TICK)
    for _, pool in due:  # a window too short for every start: start the rest now
        start_job(pool)
    w1 = time.time()
    requests = h.cp_requests(w0, w1)
    busy = {pool_name(pool) for pool in pools}
    return Window(
        seconds=w1 - w0,
        rss_mib=statistics.median(rss) if rss else memory_mib(operator.pid)[0],
        rss_peak_mib=memory_mib(operator.pid)[1],
        cpu_share=cpu.share(),
        lag_seconds=probe.between(w0, w1),
        codepipeline_calls=dict(collections.Counter(r.operation for r in requests)),
        kubernetes_writes=dict(writes_by_resource(h.audit(), OPERATOR_USER, namespace)),
        sqs_calls=dict(
            collections.Counter(c.operation for c in h.sqs_proxy.calls(w0) if c.at <= w1)
        ),
        idle_worker_polls=sum(
            1 for r in requests if r.operation == "PollForJobs" and r.query not in busy
        ),
        idle_workers=workers - len(busy),
        operator_metrics=opmetrics.window(metrics_before, opmetrics.scrape(port)),
    )


def run_idle(
    h: Harness,
    plan: Plan,
    *,
    workers: int,
    mode: str,
    progress: Progress,
    meter: StandInMeter,
    profile: Path | None = None,
) -> IdleResult:
    """K workers on one operator: until all Ready, then an idle window with a few jobs."""
    tag = f"{mode}-{workers}"
    namespace, provider = f"idle-{tag}", f"bench-idle-{tag}"
    progress.phase(f"idle fleet of {workers} ({mode})")
    rng = random.Random(plan.seed)  # noqa: S311 - workload timing, not cryptography
    action, pools = _idle_workload(
        h,
        plan,
        workers=workers,
        jobs=plan.idle_jobs,
        namespace=namespace,
        provider=provider,
        rng=rng,
    )
    settings = dict(OPERATOR_BASE_SETTINGS)
    delivered_before = h.codepipeline.events.delivered
    if mode == "events":
        settings["events_queue_url"] = h.events_queue()
    port = free_port()
    log = h.directory / f"operator-{tag}.log"
    operator = operator_process(h.operator_env(settings), namespace, log, port)
    h.clear_audit()
    meter.begin(h)
    operator.start()
    probe = LivenessProbe(port).start()
    profiler: subprocess.Popen[bytes] | None = None
    try:
        all_ready = _wait(
            lambda: len(h.observer.ready_times(namespace)) >= workers,
            plan.ready_timeout,
            tick=lambda: progress.update(
                f"{len(h.observer.ready_times(namespace))}/{workers} Ready"
            ),
            alive=operator,
        )
        ready = sorted(at - operator.started_at for at in h.observer.ready_times(namespace))
        # Steady state: every worker has polled once (the first polls are spread over what
        # the budget carries; 1,000 workers at 4 polls/s take about 250 s).
        fleet_pools = {pool_name(i) for i in range(workers)}
        steady = _wait(
            lambda: fleet_pools <= polled_pools(h, operator.started_at),
            plan.steady_timeout,
            tick=lambda: progress.update(
                f"{len(fleet_pools & polled_pools(h, operator.started_at))}/{workers} "
                "workers polled once"
            ),
            alive=operator,
        )
        startup_seconds = time.time() - operator.started_at
        startup_writes = dict(writes_by_resource(h.audit(), OPERATOR_USER, namespace))
        startup_calls = dict(
            collections.Counter(
                r.operation for r in h.cp_requests(operator.started_at, time.time())
            )
        )
        h.clear_audit()
        if profile is not None:
            profiler = _start_profiler(operator.pid, plan.idle_seconds, profile)
        window = _idle_window(
            h,
            plan,
            operator=operator,
            probe=probe,
            port=port,
            namespace=namespace,
            workers=workers,
            start_job=lambda pool: h.workload.start(action, pool_name(pool)),
            pools=pools,
            rng=rng,
            progress=progress,
        )
        _wait_reported(
            h, provider, plan.idle_jobs, plan.drain_timeout, progress=progress, operator=operator
        )
        measured = latencies(h, provider)
        progress.done(
            f"{len(ready)}/{workers} Ready after {ready[-1] if ready else math.nan:.1f} s; "
            f"{measured.dispatched}/{measured.started} jobs dispatched"
        )
    finally:
        probe.stop()
        operator.stop(grace=STOP_GRACE)
        meter.end(h)
        if profiler is not None:
            profiler.wait(timeout=60)
        if mode == "events":
            h.stop_events()
    return IdleResult(
        mode=mode,
        workers=workers,
        settings=settings,
        ready_seconds=ready,
        all_ready=all_ready,
        startup_seconds=startup_seconds,
        startup_writes=startup_writes,
        window=window,
        lag_failures=probe.failures,
        latencies=measured,
        profile=profile,
        events_delivered=h.codepipeline.events.delivered - delivered_before
        if mode == "events"
        else None,
        steady_seconds=startup_seconds,
        steady=steady,
        startup_calls=startup_calls,
    )


def _start_profiler(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy samples the operator without stopping it (--nonblocking), only the thread that
    holds the GIL (--gil: where the CPU goes, not where threads wait); raw folded stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(  # noqa: S603 - py-spy, with our own arguments
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "50",
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------------------------------------
# P3 and P5: a burst of N queued jobs over M workers, by the operator and by the raw loop
# ---------------------------------------------------------------------------------------------


@dataclass
class BurstResult:
    kind: str  # "operator" or "raw"
    jobs: int
    workers: int
    settings: dict[str, Any]
    seconds_to_first: float  # from the process's start to the first Kubernetes Job
    dispatch_seconds: float  # first to last Kubernetes Job created
    jobs_per_s: float  # (N - 1) / dispatch_seconds: the sustained rate
    cpu_share: float
    cpu_seconds: float  # from the burst's start until its last result (the raw loop: its run)
    rss_peak_mib: float
    codepipeline_calls: dict[str, int]
    kubernetes_writes: dict[str, int]
    latencies: Latencies
    complete: bool
    # Every request of the measured process, reads and watches included, as "verb resource".
    kubernetes_requests: dict[str, int] = field(default_factory=dict)


def _prequeue(
    h: Harness, action: dict[str, str], provider: str, counts: Sequence[int], progress: Progress
) -> None:
    """Queue every job of the burst before the measured process starts."""
    total = sum(counts)
    for index, count in enumerate(counts):
        for _ in range(count):
            h.workload.start(action, pool_name(index))
        progress.update(f"queueing jobs: {sum(counts[: index + 1])}/{total} started")
    queued = _wait(lambda: len(h.cp_jobs(provider)) >= total, 120.0)
    if not queued:
        raise BenchError(f"the local CodePipeline queued only {len(h.cp_jobs(provider))}/{total}")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _burst_figures(h: Harness, provider: str, t0: float) -> tuple[float, float, float, Latencies]:
    ids = _ids(h, provider)
    created = sorted(m.created for job_id, m in h.observer.job_moments().items() if job_id in ids)
    if not created:
        return (math.nan, 0.0, 0.0, latencies(h, provider))
    span = created[-1] - created[0]
    rate = (len(created) - 1) / span if span > 0 else 0.0
    return (created[0] - t0, span, rate, latencies(h, provider))


def _ids(h: Harness, provider: str) -> set[str]:
    return {job.job_id for job in h.cp_jobs(provider)}


def run_burst_operator(
    h: Harness, plan: Plan, progress: Progress, meter: StandInMeter, profile: Path | None = None
) -> BurstResult:
    namespace, provider = "burst-operator", "bench-burst-operator"
    progress.phase(f"burst: {plan.jobs} jobs over {plan.workers} workers (operator)")
    action = h.workload.action_type(provider)
    counts = _split(plan.jobs, plan.workers)
    # Capacity never limits the burst: each worker may hold all of its share at once.
    max_in_flight = min(models.MAX_IN_FLIGHT_LIMIT, max(models.DEFAULT_MAX_IN_FLIGHT, *counts))
    create_fleet(
        h.kube,
        namespace,
        [
            worker_manifest(
                i,
                namespace,
                action,
                max_in_flight=max_in_flight,
                max_interval=scaled_interval(plan),
                job_duration=plan.job_duration,
                paused=True,
            )
            for i in range(plan.workers)
        ],
    )
    settings = {
        **OPERATOR_BASE_SETTINGS,
        "rate_per_second": plan.burst_rate,
        "rate_burst": int(plan.burst_rate),
    }
    operator = operator_process(
        h.operator_env(settings), namespace, h.directory / "operator-burst.log", free_port()
    )
    operator.start()
    profiler: subprocess.Popen[bytes] | None = None
    try:
        # Started with its workers paused: the burst meets a warmed-up operator (watches
        # open, workers known), as a burst in production does; start-up is phase 1's figure.
        settled = _wait(
            lambda: h.observer.count_reason(namespace, models.Reason.PAUSED) >= plan.workers,
            plan.ready_timeout,
            tick=lambda: progress.update(
                f"{h.observer.count_reason(namespace, models.Reason.PAUSED)}/{plan.workers}"
                " workers seen (paused)"
            ),
            alive=operator,
        )
        if not settled:
            raise BenchError(
                f"the operator did not report its {plan.workers} paused workers within "
                f"{plan.ready_timeout:g} s; its log: {operator.log_path}"
            )
        _prequeue(h, action, provider, counts, progress)
        h.clear_audit()
        meter.begin(h)
        t0 = time.time()
        cpu = CpuWindow(operator.pid).start()
        if profile is not None:
            profiler = _start_profiler(operator.pid, plan.burst_timeout, profile)
        set_paused(h.kube, namespace, [worker_name(i) for i in range(plan.workers)], paused=False)
        ids = _ids(h, provider)

        def dispatched() -> int:
            return sum(1 for job_id in h.observer.job_moments() if job_id in ids)

        complete = _wait(
            lambda: dispatched() >= plan.jobs,
            plan.burst_timeout,
            tick=lambda: progress.update(f"{dispatched()}/{plan.jobs} Kubernetes Jobs"),
            alive=operator,
        )
        _wait_reported(
            h, provider, plan.jobs, plan.drain_timeout, progress=progress, operator=operator
        )
        t_end = time.time()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            profiler.wait(timeout=60)
        cpu_share, cpu_seconds = cpu.share(), cpu.seconds()
        rss_peak = memory_mib(operator.pid)[1]
        calls = collections.Counter(r.operation for r in h.cp_requests(t0, t_end))
        # The last jobs' writes after their results (the record, the Secret's deletion, the
        # count and the event) belong to the burst too: wait for the operator to go quiet.
        writes = _settled_writes(h, namespace)
        requests = requests_by_verb(h.audit(), OPERATOR_USER, namespace)
        first, span, rate, measured = _burst_figures(h, provider, t0)
        progress.done(f"{measured.dispatched}/{plan.jobs} dispatched, {rate:.1f} jobs/s")
    finally:
        operator.stop(grace=STOP_GRACE)
        if meter.running:
            meter.end(h)
    return BurstResult(
        kind="operator",
        jobs=plan.jobs,
        workers=plan.workers,
        settings=settings,
        seconds_to_first=first,
        dispatch_seconds=span,
        jobs_per_s=rate,
        cpu_share=cpu_share,
        cpu_seconds=cpu_seconds,
        rss_peak_mib=rss_peak,
        codepipeline_calls=dict(calls),
        kubernetes_writes=dict(writes),
        latencies=measured,
        complete=complete,
        kubernetes_requests=dict(requests),
    )


def _settled_writes(
    h: Harness, namespace: str, *, quiet: float = 3.0, limit: float = 60.0
) -> collections.Counter[str]:
    """The operator's writes in `namespace` once none came for `quiet` seconds (at most
    `limit` seconds from now)."""
    deadline = time.monotonic() + limit
    writes = writes_by_resource(h.audit(), OPERATOR_USER, namespace)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = writes_by_resource(h.audit(), OPERATOR_USER, namespace)
        if now == writes:
            break
        writes = now
    return writes


def _rawloop(h: Harness, plan_body: dict[str, Any], name: str) -> tuple[Subprocess, Path]:
    plan_path = h.directory / f"{name}-plan.json"
    result_path = h.directory / f"{name}-result.json"
    plan_path.write_text(json.dumps(plan_body))
    process = Subprocess(
        ["-m", "cpworker.bench.rawloop", str(plan_path), str(result_path)],
        h.raw_env(),
        h.directory / f"{name}.log",
    )
    return process, result_path


def run_burst_raw(h: Harness, plan: Plan, progress: Progress, meter: StandInMeter) -> BurstResult:
    namespace, provider = "burst-raw", "bench-burst-raw"
    progress.phase(f"burst: {plan.jobs} jobs over {plan.workers} workers (raw loop)")
    action = h.workload.action_type(provider)
    counts = _split(plan.jobs, plan.workers)
    create_fleet(h.kube, namespace, [])
    _prequeue(h, action, provider, counts, progress)
    body = {
        "region": REGION,
        "executor_threads": OperatorSettings.model_fields["executor_threads"].default,
        "deadline_s": plan.burst_timeout,
        "seed": plan.seed,
        "groups": [
            {
                "name": policies.CEILING.name,
                "policy": policies.CEILING.name,
                "action_type_id": action,
                "namespace": namespace,
                "job_duration": plan.job_duration,
                "workers": [
                    {"worker": worker_name(i), "pool": pool_name(i), "expect": count}
                    for i, count in enumerate(counts)
                ],
            }
        ],
    }
    raw, result_path = _rawloop(h, body, "raw-burst")
    h.clear_audit()
    meter.begin(h)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    raw.start()
    try:
        t0 = raw.started_at
        ids = _ids(h, provider)
        peak = 0.0

        def finished() -> bool:
            nonlocal peak
            if raw.running():
                peak = max(peak, memory_mib(raw.pid)[1])
                return False
            return True

        complete = _wait(
            finished,
            plan.burst_timeout + 40,
            tick=lambda: progress.update(
                f"{sum(1 for j in h.observer.job_moments() if j in ids)}/{plan.jobs} Jobs"
            ),
        )
    finally:
        raw.stop()
        meter.end(h)
    t_end = time.time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    calls = collections.Counter(r.operation for r in h.cp_requests(t0, t_end))
    writes = writes_by_resource(h.audit(), RAW_USER, namespace)
    requests = requests_by_verb(h.audit(), RAW_USER, namespace)
    first, span, rate, measured = _burst_figures(h, provider, t0)
    complete = complete and result_path.exists() and measured.dispatched >= plan.jobs
    progress.done(f"{measured.dispatched}/{plan.jobs} dispatched, {rate:.1f} jobs/s")
    return BurstResult(
        kind="raw",
        jobs=plan.jobs,
        workers=plan.workers,
        settings={"policy": policies.CEILING.name, "executor_threads": body["executor_threads"]},
        seconds_to_first=first,
        dispatch_seconds=span,
        jobs_per_s=rate,
        cpu_share=cpu_seconds / max(1e-9, t_end - t0),
        cpu_seconds=cpu_seconds,
        rss_peak_mib=peak,
        codepipeline_calls=dict(calls),
        kubernetes_writes=dict(writes),
        latencies=measured,
        complete=complete,
        kubernetes_requests=dict(requests),
    )


# ---------------------------------------------------------------------------------------------
# Baselines: the known workers' polling policies, modelled by the raw loop, side by side
# ---------------------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    policy: policies.PollingPolicy
    workers: int
    seconds: float
    polls: int
    latencies: Latencies


def run_baselines(
    h: Harness, plan: Plan, progress: Progress, meter: StandInMeter
) -> tuple[dict[str, BaselineResult], dict[str, Any]]:
    namespace = "baselines"
    progress.phase(f"baselines: {len(policies.BASELINES)} polling-policy models")
    create_fleet(h.kube, namespace, [])
    rng = random.Random(plan.seed + 7)  # noqa: S311 - workload timing, not cryptography
    groups, actions = [], {}
    for policy in policies.BASELINES:
        provider = f"bench-base-{policy.name}"
        action = actions[policy.name] = h.workload.action_type(provider)
        for i in range(plan.baseline_workers):
            h.workload.pipeline(action, pool_name(i))
        groups.append(
            {
                "name": policy.name,
                "policy": policy.name,
                "action_type_id": action,
                "namespace": namespace,
                "job_duration": plan.job_duration,
                "workers": [
                    {"worker": f"{policy.name}-{i}", "pool": pool_name(i), "expect": None}
                    for i in range(plan.baseline_workers)
                ],
            }
        )
    longest = max(p.interval + p.jitter for p in policies.BASELINES) / plan.time_scale
    body = {
        "region": REGION,
        "executor_threads": OperatorSettings.model_fields["executor_threads"].default,
        "deadline_s": plan.baseline_seconds + longest + 30 + plan.drain_timeout,
        "time_scale": plan.time_scale,
        "seed": plan.seed,
        "groups": groups,
    }
    raw, result_path = _rawloop(h, body, "baselines")
    meter.begin(h)
    raw.start()
    try:
        # Jobs start once the models poll (the process has started its clients).
        _wait(
            lambda: any(r.operation == "PollForJobs" for r in h.cp_requests(raw.started_at, 1e12)),
            30.0,
            alive=raw,
        )
        w0 = time.time()
        due = sorted(
            (w0 + rng.uniform(0, plan.baseline_seconds), name, pool)
            for name in actions
            for pool in _distinct_pools(rng, plan.baseline_workers, plan.baseline_jobs)
        )
        total = len(due)

        def tick() -> None:
            now = time.time()
            while due and due[0][0] <= now:
                _, name, pool = due.pop(0)
                h.workload.start(actions[name], pool_name(pool))
            done = sum(latencies(h, f"bench-base-{n}").dispatched for n in actions)
            progress.update(f"{total - len(due)}/{total} jobs started, {done} dispatched")

        _wait(
            lambda: (
                not due
                and all(
                    _settled(h, f"bench-base-{n}", plan.baseline_jobs, reported=False)
                    for n in actions
                )
            ),
            plan.baseline_seconds + longest + 20 + plan.drain_timeout,
            tick=tick,
            alive=raw,
        )
        measured = {n: latencies(h, f"bench-base-{n}") for n in actions}
    finally:
        raw.stop()
        meter.end(h)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    seconds = float(result.get("ended", time.time())) - float(result.get("started", w0))
    counted = result.get("groups", {})
    server_polls = sum(
        1 for r in h.cp_requests(raw.started_at, time.time()) if r.operation == "PollForJobs"
    )
    results = {
        policy.name: BaselineResult(
            policy=policy,
            workers=plan.baseline_workers,
            seconds=seconds,
            polls=int(counted.get(policy.name, {}).get("PollForJobs", 0)),
            latencies=measured[policy.name],
        )
        for policy in policies.BASELINES
    }
    check = {
        "client_polls": sum(r.polls for r in results.values()),
        "server_polls": server_polls,
    }
    progress.done(
        ", ".join(f"{n} {r.latencies.dispatched}/{r.latencies.started}" for n, r in results.items())
    )
    return results, check


# ---------------------------------------------------------------------------------------------
# Beyond one replica: two shards of one fleet (label selectors), each its own events queue
# ---------------------------------------------------------------------------------------------

SHARD_LABEL = "shard"
SHARDS = ("a", "b")


def shard_of(index: int) -> str:
    return SHARDS[index % len(SHARDS)]


def shard_user(shard: str) -> str:
    return f"{OPERATOR_USER}-shard-{shard}"


@dataclass
class ShardsResult:
    workers: int
    mode: str  # "polling" or "events"
    ready: bool
    # Per shard: the workers whose status it wrote, the Jobs it wrote (by name), and the
    # Job creations the API server refused as AlreadyExists (a second creator).
    status_writes: dict[str, set[str]]
    job_writes: dict[str, set[str]]
    duplicate_creates: dict[str, int]
    # Per CodePipeline job id: its pool, and the results it received.
    pools: dict[str, str]
    results: dict[str, int]
    kubernetes_jobs: int
    latencies: Latencies
    settings: dict[str, Any]


def run_shards(
    h: Harness,
    plan: Plan,
    progress: Progress,
    meter: StandInMeter,
    *,
    events: bool,
) -> ShardsResult:
    """One fleet split over two operators by `CPWORKER_WORKER_SELECTOR` (shard=a, shard=b) in
    one namespace; jobs started on random pools. Who wrote what is read from the audit log
    (each shard has an identity of its own), results per job from the stand-in's request log."""
    namespace, provider = "shards", "bench-shards"
    workers = plan.shard_workers
    progress.phase(f"two shards of {workers} workers ({'events' if events else 'polling'})")
    rng = random.Random(plan.seed + 11)  # noqa: S311 - workload timing, not cryptography
    action, pools = _idle_workload(
        h,
        plan,
        workers=workers,
        jobs=plan.shard_jobs,
        namespace=namespace,
        provider=provider,
        rng=rng,
        labels=lambda i: {SHARD_LABEL: shard_of(i)},
    )
    operators: dict[str, Subprocess] = {}
    settings: dict[str, Any] = {}
    h.clear_audit()
    meter.begin(h)
    try:
        for shard in SHARDS:
            settings[shard] = {
                **OPERATOR_BASE_SETTINGS,
                "worker_selector": f"{SHARD_LABEL}={shard}",
            }
            if events:
                # Each shard its own queue: SQS consumers compete for messages, so a shared
                # queue would hand one shard's events to the other.
                settings[shard]["events_queue_url"] = h.events_queue()
            operators[shard] = operator_process(
                h.operator_env(settings[shard], user=shard_user(shard)),
                namespace,
                h.directory / f"operator-shard-{shard}.log",
                free_port(),
            ).start()
        ready = all(
            _wait(
                lambda: len(h.observer.ready_times(namespace)) >= workers,
                plan.ready_timeout,
                tick=lambda: progress.update(
                    f"{len(h.observer.ready_times(namespace))}/{workers} Ready"
                ),
                alive=process,
            )
            for process in operators.values()
        )
        w0 = time.time()
        due = sorted((w0 + rng.uniform(0, plan.shard_seconds), pool) for pool in pools)
        while due:
            if due[0][0] <= time.time():
                h.workload.start(action, pool_name(due.pop(0)[1]))
                continue
            for process in operators.values():
                if not process.running():
                    raise BenchError(f"a shard's operator exited:\n{process.tail()}")
            progress.update(f"{len(pools) - len(due)}/{len(pools)} jobs started")
            time.sleep(TICK)
        for process in operators.values():
            _wait_reported(
                h,
                provider,
                plan.shard_jobs,
                plan.drain_timeout,
                progress=progress,
                operator=process,
            )
        measured = latencies(h, provider)
        audit = h.audit()
        status_writes = {
            shard: {
                r.name
                for r in audit
                if r.user == shard_user(shard)
                and r.resource == "customactionworkers"
                and r.verb in WRITE_VERBS
                and r.namespace == namespace
            }
            for shard in SHARDS
        }
        job_writes = {
            shard: {
                r.name
                for r in audit
                if r.user == shard_user(shard)
                and r.resource == "jobs"
                and r.verb in WRITE_VERBS
                and r.name
                and r.namespace == namespace
            }
            for shard in SHARDS
        }
        duplicate_creates = {
            shard: sum(
                1
                for r in audit
                if r.user == shard_user(shard)
                and r.resource == "jobs"
                and r.verb == "create"
                and r.code == 409
            )
            for shard in SHARDS
        }
        jobs = h.cp_jobs(provider)
        ids = {job.job_id for job in jobs}
        results = collections.Counter(
            r.job_id
            for r in h.cp_requests(w0 - 1, time.time())
            if r.operation in {"PutJobSuccessResult", "PutJobFailureResult"}
            and r.outcome == "ok"
            and r.job_id in ids
        )
        pool_of = {job.job_id: job.pipeline_name.rsplit("-", 1)[-1] for job in jobs}
        kubernetes_jobs = sum(1 for job_id in h.observer.job_moments() if job_id in ids)
        progress.done(
            f"{measured.dispatched}/{measured.started} dispatched, "
            f"{sum(results.values())} results for {len(ids)} jobs"
        )
    finally:
        for process in operators.values():
            process.stop(grace=STOP_GRACE)
        meter.end(h)
        if events:
            h.stop_events()
    return ShardsResult(
        workers=workers,
        mode="events" if events else "polling",
        ready=ready,
        status_writes=status_writes,
        job_writes=job_writes,
        duplicate_creates=duplicate_creates,
        pools=pool_of,
        results=dict(results),
        kubernetes_jobs=kubernetes_jobs,
        latencies=measured,
        settings=settings,
    )
