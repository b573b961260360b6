"""The report of one run: the JSON document (pure, from the phases' results) and the table."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cpworker import models, names
from cpworker.bench import stats
from cpworker.bench.phases import (
    PER_JOB_OPERATIONS,
    SHARDS,
    BaselineResult,
    BurstResult,
    IdleResult,
    ShardsResult,
    StandInMeter,
    shard_of,
)

LIVENESS_METHOD = (
    "answer time of the operator's /healthz (kopf serves it on the operator's event loop and "
    "caches probe results for 10 s): an upper bound of the event loop's lag, sampled every 0.5 s"
)
# Calls that belong to a job, not to an idle worker: its event's GetPipeline (the workers an
# event wakes), and the job calls.
JOB_OPERATIONS = PER_JOB_OPERATIONS | {"GetPipeline"}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def latency(samples: Sequence[float], *, lower_bound: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = stats.summary(samples)
    figures["lower_bound"] = lower_bound
    return figures


def _worker_writes(writes: Mapping[str, int]) -> int:
    return sum(count for resource, count in writes.items() if resource.startswith("customaction"))


def _ready_at(ready: Sequence[float], fraction: float, workers: int) -> float | None:
    needed = max(1, round(workers * fraction))
    return _round(ready[needed - 1], 2) if len(ready) >= needed else None


def idle_figures(result: IdleResult, ready_timeout: float) -> dict[str, Any]:
    figures = result.window
    window = figures.seconds
    workers = result.workers
    polling_calls = sum(
        n for op, n in figures.codepipeline_calls.items() if op not in PER_JOB_OPERATIONS
    )
    # An idle worker's cost: the polls of the workers that had no job in the window, and the
    # calls that serve every worker (the action-type catalogue), per idle worker and hour.
    shared = sum(
        n
        for op, n in figures.codepipeline_calls.items()
        if op not in JOB_OPERATIONS and op != "PollForJobs"
    )
    idle_cost = stats.per_worker_hour(
        figures.idle_worker_polls + shared, figures.idle_workers, window
    )
    lag = figures.lag_seconds
    all_ready_at = result.ready_seconds[-1] if result.all_ready and result.ready_seconds else None
    lat = result.latencies
    own = figures.operator_metrics or {}
    return {
        "workers": workers,
        "mode": result.mode,
        "rss_mib": _round(figures.rss_mib, 1),
        "rss_peak_mib": _round(figures.rss_peak_mib, 1),
        "rss_kib_per_worker": _round(figures.rss_mib * 1024 / workers, 1) if workers else None,
        "cpu_share": _round(figures.cpu_share),
        "event_loop_lag_s": {
            **(own.get("event_loop_lag_s") or {}),
            "method": "the operator's cpworker_event_loop_lag_seconds (a task sleeping 0.25 s, "
            "how late it wakes); p50/p99 are the upper bounds of their histogram buckets",
        },
        "rate_budget_wait_s": own.get("rate_budget_wait_s"),
        "liveness_answer_s": {
            "p50": _round(stats.percentile(lag, 50)),
            "p99": _round(stats.percentile(lag, 99)),
            "max": _round(max(lag)) if lag else None,
            "samples": len(lag),
            "failed_probes": result.lag_failures,
            "method": LIVENESS_METHOD,
        },
        "codepipeline_calls_per_worker_hour": _round(idle_cost, 2),
        "idle_workers_measured": figures.idle_workers,
        "codepipeline_calls_per_worker_hour_all": _round(
            stats.per_worker_hour(polling_calls, workers, window), 2
        ),
        "codepipeline_calls_by_operation": dict(sorted(figures.codepipeline_calls.items())),
        "kubernetes_writes_per_worker_hour": _round(
            stats.per_worker_hour(_worker_writes(figures.kubernetes_writes), workers, window), 2
        ),
        "kubernetes_writes_all_per_worker_hour": _round(
            stats.per_worker_hour(sum(figures.kubernetes_writes.values()), workers, window), 2
        ),
        "kubernetes_writes_by_resource": dict(sorted(figures.kubernetes_writes.items())),
        "sqs_calls_per_hour": _round(stats.per_hour(sum(figures.sqs_calls.values()), window), 1),
        "sqs_calls_by_operation": dict(sorted(figures.sqs_calls.items())),
        "events_delivered": result.events_delivered,
        # Not all Ready in time: the timeout stands in, as a lower bound (all_ready: false).
        "seconds_until_all_ready": _round(
            all_ready_at if all_ready_at is not None else ready_timeout, 2
        ),
        "all_ready": result.all_ready,
        "ready_workers": len(result.ready_seconds),
        "seconds_until_first_ready": _ready_at(result.ready_seconds, 0.0, workers),
        "seconds_until_half_ready": _ready_at(result.ready_seconds, 0.5, workers),
        "startup_kubernetes_writes_per_worker": _round(
            sum(result.startup_writes.values()) / workers if workers else 0.0, 2
        ),
        "startup_kubernetes_writes_by_resource": dict(sorted(result.startup_writes.items())),
        "startup_codepipeline_calls_per_worker": _round(
            sum(result.startup_calls.values()) / workers if workers else 0.0, 3
        ),
        "startup_codepipeline_calls_by_operation": dict(sorted(result.startup_calls.items())),
        # The idle window starts once every worker polled once (or after the steady timeout).
        "seconds_until_every_worker_polled": _round(result.steady_seconds, 1),
        "steady": result.steady,
        "window_s": _round(window, 1),
        "jobs": {"started": lat.started, "dispatched": lat.dispatched, "reported": lat.reported},
        "dispatch_latency_s": latency(lat.dispatch, lower_bound=lat.lower_bound),
        "release_latency_s": latency(lat.released, lower_bound=lat.release_lower_bound),
        "report_latency_s": latency(lat.report, lower_bound=lat.report_lower_bound),
        "operator_settings": result.settings,
    }


def shards_figures(result: ShardsResult) -> dict[str, Any]:
    """Two shards split the workers with no overlap, and no job was dispatched twice."""
    fleet = {f"w{i:05d}": shard_of(i) for i in range(result.workers)}
    served = {shard: result.status_writes[shard] & set(fleet) for shard in SHARDS}
    owner_of_job = {
        names.job_object_name(job_id): shard_of(int(pool.lstrip("p")))
        for job_id, pool in result.pools.items()
    }
    lat = result.latencies
    results = [result.results.get(job_id, 0) for job_id in result.pools]
    return {
        "shards": len(SHARDS),
        "workers": result.workers,
        "mode": result.mode,
        "all_ready": result.ready,
        "selectors": {s: result.settings[s]["worker_selector"] for s in SHARDS},
        "workers_per_shard": {s: len(served[s]) for s in SHARDS},
        "workers_expected_per_shard": {
            s: sum(1 for owner in fleet.values() if owner == s) for s in SHARDS
        },
        # Workers whose status both shards wrote, that neither wrote, or the wrong one wrote.
        "overlap_workers": len(served[SHARDS[0]] & served[SHARDS[1]]),
        "unserved_workers": len(set(fleet) - served[SHARDS[0]] - served[SHARDS[1]]),
        "workers_served_by_the_other_shard": sum(
            1 for s in SHARDS for worker in served[s] if fleet[worker] != s
        ),
        "jobs": {"started": lat.started, "dispatched": lat.dispatched, "reported": lat.reported},
        "kubernetes_jobs": result.kubernetes_jobs,
        "duplicate_job_creations": sum(result.duplicate_creates.values()),
        "results_per_job_max": max(results, default=0),
        "jobs_with_more_than_one_result": sum(1 for n in results if n > 1),
        "jobs_without_result": sum(1 for n in results if n == 0),
        "jobs_written_by_both_shards": len(
            result.job_writes[SHARDS[0]] & result.job_writes[SHARDS[1]]
        ),
        "jobs_written_by_the_other_shard": sum(
            1 for s in SHARDS for job in result.job_writes[s] if owner_of_job.get(job, s) != s
        ),
        "dispatch_latency_s": latency(lat.dispatch, lower_bound=lat.lower_bound),
        "report_latency_s": latency(lat.report, lower_bound=lat.report_lower_bound),
        "method": "each shard is a `cpworker run` with CPWORKER_WORKER_SELECTOR shard=a or "
        "shard=b (and an events queue of its own) and a Kubernetes identity of its own: the "
        "workers and Jobs each wrote come from the local Kubernetes' audit log, the results "
        "per job from the local CodePipeline's request log",
    }


def _per_job(counts: Mapping[str, int], jobs: int) -> dict[str, float]:
    return {k: round(v / jobs, 3) for k, v in sorted(counts.items())} if jobs else {}


def one_poll_round(jobs: int, workers: int) -> bool:
    """Whether every worker's share fits in its first poll's batch: then the burst measures
    one round of parallel claims, not a sustained rate. Found when 300 jobs over 50 workers
    gave 0.80 of the raw loop in 1.2 s, and 1,000 over 50 gave 0.15 in 32 s."""
    return -(-jobs // max(1, workers)) <= models.DEFAULT_BATCH_CAP


def burst_figures(result: BurstResult) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "jobs": result.jobs,
        "workers": result.workers,
        "dispatched": result.latencies.dispatched,
        "complete": result.complete,
        "jobs_per_s": _round(result.jobs_per_s, 2),
        "seconds_first_to_last": _round(result.dispatch_seconds, 2),
        "seconds_to_first_job": _round(result.seconds_to_first, 2),
        "cpu_share": _round(result.cpu_share),
        # Less noisy than the rates on a shared machine: the operator's whole job (claim,
        # supervision, report), against the raw loop's four calls.
        "cpu_ms_per_job": _round(1000 * result.cpu_seconds / max(1, result.jobs), 2),
        "rss_peak_mib": _round(result.rss_peak_mib, 1),
        "codepipeline_calls_by_operation": dict(sorted(result.codepipeline_calls.items())),
        "kubernetes_writes_by_resource": dict(sorted(result.kubernetes_writes.items())),
        "kubernetes_requests_by_verb": dict(sorted(result.kubernetes_requests.items())),
        "settings": result.settings,
    }
    if result.kind == "operator":  # the raw loop reports nothing
        figures["report_latency_s"] = latency(
            result.latencies.report, lower_bound=result.latencies.report_lower_bound
        )
    return figures


def economy(result: BurstResult) -> dict[str, Any]:
    jobs = max(1, result.latencies.dispatched)
    non_poll = {k: v for k, v in result.codepipeline_calls.items() if k != "PollForJobs"}
    polls = result.codepipeline_calls.get("PollForJobs", 0)
    writes = result.kubernetes_writes
    return {
        "codepipeline_calls_per_job": _round(sum(non_poll.values()) / jobs, 3),
        # Every write by the operator, Kubernetes Events (the audit trail on the worker)
        # included; then without them; then the Job record alone (the Job and its Secret).
        "kubernetes_writes_per_job": _round(sum(writes.values()) / jobs, 3),
        "kubernetes_writes_per_job_without_events": _round(
            sum(n for r, n in writes.items() if r != "events") / jobs, 3
        ),
        "kubernetes_record_writes_per_job": _round(
            sum(n for r, n in writes.items() if r in {"jobs", "secrets"}) / jobs, 3
        ),
        "polls_per_job": _round(polls / jobs, 3),
        "codepipeline_calls_per_job_by_operation": _per_job(non_poll, jobs),
        "kubernetes_writes_per_job_by_resource": _per_job(result.kubernetes_writes, jobs),
        "measured_on": f"the burst: {result.jobs} jobs over {result.workers} workers",
    }


def baseline_figures(
    result: BaselineResult, scale: float, ours_p50: float | None, ours_calls: float | None
) -> dict[str, Any]:
    lat = result.latencies
    calls = stats.per_worker_hour(result.polls, result.workers, result.seconds)
    their_p50 = stats.percentile(lat.dispatch, 50)
    return {
        "label": result.policy.label,
        "interval_s": result.policy.interval / scale,
        "jitter_s": result.policy.jitter / scale,
        "batch": result.policy.batch,
        "workers": result.workers,
        "jobs": {"started": lat.started, "dispatched": lat.dispatched},
        "dispatch_latency_s": latency(lat.dispatch, lower_bound=lat.lower_bound),
        "codepipeline_calls_per_worker_hour": _round(calls, 2),
        "expected_calls_per_worker_hour": _round(
            result.policy.expected_calls_per_worker_hour(scale), 2
        ),
        "our_latency_ratio": _round(stats.ratio(ours_p50, their_p50)),
        "our_idle_cost_ratio": _round(stats.ratio(ours_calls, calls)),
    }


@dataclass(frozen=True)
class StandInView:
    """What the stand-ins answered over the whole run (for their overhead)."""

    codepipeline_latencies: Mapping[str, Sequence[float]]  # operation -> server seconds
    meter: StandInMeter


def stand_ins(view: StandInView) -> dict[str, Any]:
    every = [s for samples in view.codepipeline_latencies.values() for s in samples]
    meter = view.meter

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    cp_requests = meter.requests.get("codepipeline", 0)
    kube_requests = meter.requests.get("kubernetes", 0)
    return {
        "codepipeline": {
            "calls": len(every),
            "server_ms_per_call": {
                "p50": ms(stats.percentile(every, 50)),
                "p99": ms(stats.percentile(every, 99)),
                "mean": ms(statistics.fmean(every)) if every else None,
            },
            "server_ms_by_operation": {
                op: {
                    "calls": len(samples),
                    "p50": ms(stats.percentile(samples, 50)),
                    "p99": ms(stats.percentile(samples, 99)),
                }
                for op, samples in sorted(view.codepipeline_latencies.items())
            },
            "loop_cpu_ms_per_call": ms(meter.cpu.get("codepipeline", 0.0) / cp_requests)
            if cp_requests
            else None,
        },
        "kubernetes": {
            "requests": kube_requests,
            # The loop also runs the simulated Job controller and kubelet.
            "loop_cpu_ms_per_request": ms(meter.cpu.get("kubernetes", 0.0) / kube_requests)
            if kube_requests
            else None,
            "loop_cpu_share": _round(meter.cpu.get("kubernetes", 0.0) / meter.wall)
            if meter.wall
            else None,
        },
        "codepipeline_loop_cpu_share": _round(meter.cpu.get("codepipeline", 0.0) / meter.wall)
        if meter.wall
        else None,
        # moto, both stand-ins, the SQS pass-through and the benchmark's driver: one process.
        "process_cpu_share": _round(meter.bench_cpu / meter.wall) if meter.wall else None,
    }


def _round_all(samples: Sequence[float]) -> list[float]:
    return [round(s, 4) for s in samples]


def build(
    *,
    idle: Sequence[IdleResult],
    burst_operator: BurstResult,
    burst_raw: BurstResult,
    baselines: Mapping[str, BaselineResult],
    baseline_check: Mapping[str, Any],
    shards: ShardsResult | None = None,
    view: StandInView,
    ready_timeout: float,
    time_scale: float,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """The whole report. Top-level figures are from the events run when there was one."""
    first_size = idle[0].workers
    by_mode = {r.mode: r for r in idle if r.workers == first_size}
    polling = by_mode["polling"]
    headline = by_mode.get("events", polling)
    metadata.setdefault("events", {})["top_level_from"] = headline.mode
    head = idle_figures(headline, ready_timeout)
    poll = idle_figures(polling, ready_timeout)
    ours_p50 = head["dispatch_latency_s"]["p50"]
    ours_calls = head["codepipeline_calls_per_worker_hour"]
    raw_rate = burst_raw.jobs_per_s
    return {
        "dispatch_latency_s": head["dispatch_latency_s"],
        "report_latency_s": head["report_latency_s"],
        "burst": {
            "jobs": burst_operator.jobs,
            "workers": burst_operator.workers,
            "jobs_per_s": _round(burst_operator.jobs_per_s, 2),
            "raw_jobs_per_s": _round(raw_rate, 2),
            "ratio_to_raw": _round(stats.ratio(burst_operator.jobs_per_s, raw_rate)),
            "one_poll_round": one_poll_round(burst_operator.jobs, burst_operator.workers),
            "operator": burst_figures(burst_operator),
            "raw": burst_figures(burst_raw),
        },
        "idle": head,
        "economy": economy(burst_operator),
        "polling_only": {
            "workers": poll["workers"],
            "dispatch_latency_s": poll["dispatch_latency_s"],
            "release_latency_s": poll["release_latency_s"],
            "report_latency_s": poll["report_latency_s"],
            "codepipeline_calls_per_worker_hour": poll["codepipeline_calls_per_worker_hour"],
            "kubernetes_writes_per_worker_hour": poll["kubernetes_writes_per_worker_hour"],
            "seconds_until_all_ready": poll["seconds_until_all_ready"],
        },
        "fleet": [idle_figures(r, ready_timeout) for r in idle],
        "baselines": {
            name: baseline_figures(result, time_scale, ours_p50, ours_calls)
            for name, result in baselines.items()
        },
        "baseline_poll_check": dict(baseline_check),
        **({"shards": shards_figures(shards)} if shards is not None else {}),
        "stand_ins": stand_ins(view),
        "distributions": {
            "dispatch_latency_s": {
                **{f"ours ({r.mode})": _round_all(r.latencies.dispatch) for r in by_mode.values()},
                **{n: _round_all(r.latencies.dispatch) for n, r in baselines.items()},
            },
            "report_latency_s": {
                **{f"ours ({r.mode})": _round_all(r.latencies.report) for r in by_mode.values()},
                "ours (burst)": _round_all(burst_operator.latencies.report),
            },
        },
        "metadata": metadata,
    }


# ---------------------------------------------------------------------------------------------
# The terminal table
# ---------------------------------------------------------------------------------------------

# (limit, comparison): the targets for this 2-core machine, events on.
Target = tuple[float, str]


def _get(report: Mapping[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


RATIO_PATH = "burst.ratio_to_raw"
ROWS: tuple[tuple[str, str, Target | None], ...] = (
    ("P1 dispatch latency p50 (s)", "dispatch_latency_s.p50", (0.5, "<=")),
    ("P1 dispatch latency p95 (s)", "dispatch_latency_s.p95", None),
    ("P1 dispatch latency p99 (s)", "dispatch_latency_s.p99", (1.5, "<=")),
    ("P1 until released p50 (s)", "idle.release_latency_s.p50", None),
    ("P1 until released p99 (s)", "idle.release_latency_s.p99", None),
    ("P1 polling only p50 (s)", "polling_only.dispatch_latency_s.p50", None),
    ("P1 polling only p99 (s)", "polling_only.dispatch_latency_s.p99", None),
    ("P2 report latency p50 (s)", "report_latency_s.p50", None),
    ("P2 report latency p99 (s)", "report_latency_s.p99", (0.5, "<=")),
    ("P3 burst jobs/s", "burst.jobs_per_s", None),
    ("P3 raw loop jobs/s", "burst.raw_jobs_per_s", None),
    ("P3 ratio to raw", RATIO_PATH, (0.7, ">=")),
    ("P3 CPU ms/job, operator", "burst.operator.cpu_ms_per_job", None),
    ("P3 CPU ms/job, raw loop", "burst.raw.cpu_ms_per_job", None),
    ("P4 idle workers", "idle.workers", None),
    ("P4 resident memory (MiB)", "idle.rss_mib", (150.0, "<=")),
    ("P4 CPU share of one core", "idle.cpu_share", (0.03, "<=")),
    ("P4 seconds until all Ready", "idle.seconds_until_all_ready", (60.0, "<=")),
    ("P5 CodePipeline calls/job", "economy.codepipeline_calls_per_job", (3.0, "<=")),
    ("P5 Kubernetes writes/job", "economy.kubernetes_writes_per_job", (4.0, "<=")),
    ("P5 ... without Events", "economy.kubernetes_writes_per_job_without_events", None),
    ("P5 ... Job and Secret only", "economy.kubernetes_record_writes_per_job", None),
    ("P5 CP calls/idle worker-hour", "idle.codepipeline_calls_per_worker_hour", (6.0, "<=")),
    ("P5 polling only, calls/w-h", "polling_only.codepipeline_calls_per_worker_hour", (60.0, "<=")),
    ("P5 kube writes/idle worker-h", "idle.kubernetes_writes_per_worker_hour", (1.0, "<=")),
    ("P5 SQS calls/hour", "idle.sqs_calls_per_hour", (200.0, "<=")),
    ("P4 event-loop lag p99 <= (s)", "idle.event_loop_lag_s.p99_at_most", None),
    ("budget wait urgent p99 <= (s)", "idle.rate_budget_wait_s.urgent.p99_at_most", None),
    ("shards: workers in both", "shards.overlap_workers", (0.0, "<=")),
    ("shards: workers in neither", "shards.unserved_workers", (0.0, "<=")),
    ("shards: Jobs written by both", "shards.jobs_written_by_both_shards", (0.0, "<=")),
    ("shards: results per job, max", "shards.results_per_job_max", (1.0, "<=")),
    ("shards: dispatch p50 (s)", "shards.dispatch_latency_s.p50", None),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            return f"{value:.4f}"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _verdict(value: Any, target: Target | None) -> str:
    if target is None or not isinstance(value, int | float):
        return ""
    limit, compare = target
    met = value <= limit if compare == "<=" else value >= limit
    return f"{compare} {_fmt(limit)}  {'ok' if met else 'MISS'}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return out


def render(report: Mapping[str, Any]) -> str:
    meta = report.get("metadata", {})
    events = meta.get("events", {})
    lines = [
        f"cpworker bench  {meta.get('started', '')}  {meta.get('command', '')}",
        f"machine: {meta.get('machine', {}).get('summary', '')}",
        f"top-level figures from the {events.get('top_level_from', '?')} run"
        + (
            ""
            if events.get("operator_reads_events_queue")
            else " (this operator does not read the events queue)"
        ),
    ]
    lines += [f"note: {note}" for note in meta.get("notes", [])]
    lines.append("")
    one_round = bool(_get(report, "burst.one_poll_round"))
    rows = [
        (
            label,
            _fmt(_get(report, path)),
            "one poll round: not a rate"
            if one_round and path == RATIO_PATH
            else _verdict(_get(report, path), target),
        )
        for label, path, target in ROWS
    ]
    lines += _table(("figure", "value", "target"), rows)
    lines.append("")
    baseline_rows = [
        (
            name,
            _fmt(_get(b, "dispatch_latency_s.p50")),
            _fmt(_get(b, "dispatch_latency_s.p99")),
            _fmt(b.get("codepipeline_calls_per_worker_hour")),
            _fmt(b.get("our_latency_ratio")),
            _fmt(b.get("our_idle_cost_ratio")),
        )
        for name, b in report.get("baselines", {}).items()
    ]
    lines += _table(
        ("baseline (policy model)", "p50 s", "p99 s", "calls/w-h", "ours/p50", "ours/cost"),
        baseline_rows,
    )
    lines.append("")
    fleet_rows = [
        (
            _fmt(f["workers"]),
            f["mode"],
            _fmt(f["seconds_until_all_ready"]) + ("" if f["all_ready"] else "+"),
            _fmt(f["codepipeline_calls_per_worker_hour"]),
            _fmt(f["kubernetes_writes_per_worker_hour"]),
            _fmt(_get(f, "dispatch_latency_s.p50")),
            _fmt(_get(f, "dispatch_latency_s.p99")),
            _fmt(_get(f, "release_latency_s.p99")),
            _fmt(f["rss_mib"]),
            _fmt(f["cpu_share"]),
        )
        for f in report.get("fleet", [])
    ]
    lines += _table(
        (
            "fleet",
            "mode",
            "all Ready s",
            "CP/w-h",
            "writes/w-h",
            "p50 s",
            "p99 s",
            "released p99",
            "MiB",
            "CPU",
        ),
        fleet_rows,
    )
    standins = report.get("stand_ins", {})
    cp_p50 = _fmt(_get(standins, "codepipeline.server_ms_per_call.p50"))
    cp_p99 = _fmt(_get(standins, "codepipeline.server_ms_per_call.p99"))
    kube_cpu = _fmt(_get(standins, "kubernetes.loop_cpu_ms_per_request"))
    share = _fmt(standins.get("process_cpu_share"))
    lines += [
        "",
        (
            f"stand-ins: CodePipeline {cp_p50} ms/call p50, {cp_p99} ms p99; Kubernetes"
            f" {kube_cpu} ms CPU/request; their process used {share} of a core"
        ),
        "baselines are models of each product's polling policy, not the products",
    ]
    return "\n".join(lines)
