"""`cpworker bench`: the real operator against the local stand-ins, measured in one run.

    cpworker bench [--quick] [--json PATH] [--png PATH] [--profile PATH] [sizes and windows]

Phases, each with a namespace and a custom action type of its own:
  1. idle fleet (P4, issue 17): K workers on one `cpworker run`; seconds until all Ready, memory,
     CPU, event-loop lag, idle calls and writes; jobs started while it idles give P1 and P2.
     Polling only, then with events (when the operator reads CPWORKER_EVENTS_QUEUE_URL).
  2. burst (P3, P5): N queued jobs over M workers, the operator's rate budget lifted.
  3. baselines: the known workers' polling policies, modelled by the raw loop.
  4. raw loop (P3): the same burst with only the necessary calls, as fast as the stand-ins go.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cpworker.bench import chart, phases, report
from cpworker.bench import profile as profiling
from cpworker.bench.harness import BENCH_OPERATIONS, Harness
from cpworker.bench.plan import FULL, QUICK, Plan
from cpworker.bench.progress import Progress

REPOSITORY = Path(__file__).resolve().parents[3]


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of counts: {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("fleet sizes must be positive, e.g. 1000 or 1000,10000")
    return sizes


def _operator_source(text: str) -> Path:
    path = Path(text)
    if not (path / "cpworker" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(
            f"{text} has no cpworker package: give the operator/ directory of a source tree"
        )
    return path


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cpworker bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 20x faster polling")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--png", type=Path, help="write the chart (needs the bench extra) here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the operator in the first idle window (folded stacks here) and the burst "
        "(beside it, -burst in the name)",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and kubeconfigs here")
    parser.add_argument(
        "--operator-source",
        type=_operator_source,
        metavar="DIR",
        help="measure the operator of another source tree (its operator/ directory, e.g. "
        "from `git archive`) with this benchmark: before/after figures",
    )
    parser.add_argument(
        "--chart-from", type=Path, metavar="JSON", help="only draw --png from a report"
    )
    sizes = parser.add_argument_group("sizes and windows (defaults: the full run, or --quick)")
    sizes.add_argument("--jobs", type=int, help="burst: jobs N")
    sizes.add_argument("--workers", type=int, help="burst: workers M")
    sizes.add_argument(
        "--idle-workers", type=_sizes, help="idle fleet sizes K, comma-separated (first: headline)"
    )
    sizes.add_argument("--idle-seconds", type=float, help="idle measurement window")
    sizes.add_argument("--idle-jobs", type=int, help="jobs started while the fleet idles")
    sizes.add_argument("--baseline-workers", type=int, help="workers per baseline model")
    sizes.add_argument("--baseline-seconds", type=float, help="window for baseline jobs")
    sizes.add_argument("--baseline-jobs", type=int, help="jobs per baseline model")
    sizes.add_argument("--ready-timeout", type=float, help="longest wait for all Ready")
    sizes.add_argument("--drain-timeout", type=float, help="longest wait for started jobs")
    sizes.add_argument("--steady-timeout", type=float, help="longest wait for first polls")
    sizes.add_argument("--shard-workers", type=int, help="shards: workers over two shards")
    sizes.add_argument("--shard-jobs", type=int, help="shards: jobs started")
    sizes.add_argument("--shard-seconds", type=float, help="shards: window for their jobs")
    sizes.add_argument("--burst-timeout", type=float, help="longest wait for the burst")
    sizes.add_argument("--burst-rate", type=float, help="operator rate budget in the burst")
    sizes.add_argument("--job-duration", type=float, help="seconds each simulated pod runs")
    sizes.add_argument("--time-scale", type=float, help="divide every polling interval by this")
    sizes.add_argument("--seed", type=int, help="seed of the workload's timing")
    parser.add_argument(
        "--events",
        choices=("auto", "on", "off"),
        help="the events run: auto = when the operator reads CPWORKER_EVENTS_QUEUE_URL",
    )
    return parser.parse_args(list(argv))


def plan_from(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    changes = {
        name: getattr(args, name)
        for name in (
            "jobs",
            "workers",
            "idle_workers",
            "idle_seconds",
            "idle_jobs",
            "baseline_workers",
            "baseline_seconds",
            "baseline_jobs",
            "ready_timeout",
            "steady_timeout",
            "shard_workers",
            "shard_jobs",
            "shard_seconds",
            "drain_timeout",
            "burst_timeout",
            "burst_rate",
            "job_duration",
            "time_scale",
            "seed",
            "events",
        )
        if getattr(args, name) is not None
    }
    plan = plan.with_changes(**changes)
    problems = [
        f"--{name.replace('_', '-')} must be positive"
        for name in (
            "jobs",
            "workers",
            "idle_jobs",
            "baseline_workers",
            "baseline_jobs",
            "shard_workers",
            "shard_jobs",
        )
        if getattr(plan, name) < 1
    ]
    problems += [
        f"--{name.replace('_', '-')} must be positive"
        for name in ("idle_seconds", "baseline_seconds", "time_scale", "job_duration")
        if getattr(plan, name) <= 0
    ]
    if not 0 < plan.burst_rate <= 1000:
        problems.append("--burst-rate must be in (0, 1000] (the operator's setting allows no more)")
    if plan.workers > plan.jobs:
        problems.append("--workers must not exceed --jobs")
    if problems:
        raise SystemExit("cpworker bench: " + "; ".join(problems))
    return plan


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpus = os.cpu_count() or 0
    return {
        "summary": f"{platform.system()} {platform.machine()}, {cpus} CPUs ({model or 'unknown'}),"
        f" {memory:.0f} GiB, Python {platform.python_version()}",
        "cpus": cpus,
        "cpu_model": model,
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> dict[str, Any]:
    git = shutil.which("git")
    if git is None:
        return {}
    try:
        commit = subprocess.run(  # noqa: S603 - git, with fixed arguments
            [git, "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - git, with fixed arguments
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def notes_for(plan: Plan, events_run: bool) -> list[str]:
    notes = []
    if plan.time_scale != 1:
        notes.append(
            f"polling intervals divided by {plan.time_scale:g} (ours and the baselines'): "
            "latencies and per-hour costs are as measured, not the default policies'"
        )
    if events_run and not phases.operator_reads_events():
        notes.append(
            "events run forced (--events on), but this operator has no events_queue_url "
            "setting: it ignores the queue, so its events figures are polling figures"
        )
    if not events_run:
        notes.append(
            "no events run: top-level figures are from the polling-only run"
            + (
                " (the operator has no events_queue_url setting)"
                if not phases.operator_reads_events()
                else " (--events off)"
            )
        )
    notes.append(
        "burst: the operator's rate budget is lifted to "
        f"{plan.burst_rate:g} calls/s so the figure measures the operator, not the budget"
    )
    return notes


def burst_profile_path(profile: Path) -> Path:
    """Where the burst's profile goes: beside the idle window's, `-burst` in its name."""
    return profile.with_name(f"{profile.stem}-burst{profile.suffix}")


def run(
    plan: Plan,
    workdir: Path,
    profile: Path | None,
    argv: Sequence[str],
    operator_source: Path | None = None,
) -> dict[str, Any]:
    progress = Progress()
    started = time.time()
    meta: dict[str, Any] = {
        "command": " ".join(["cpworker", "bench", *argv]),
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "git": git_commit(),
        "plan": asdict(plan),
    }
    events_run = plan.events == "on" or (plan.events == "auto" and phases.operator_reads_events())
    meta["events"] = {
        "requested": plan.events,
        "operator_reads_events_queue": phases.operator_reads_events(),
        "measured": events_run,
    }
    progress.phase("starting the stand-ins")
    harness = Harness.start(workdir, plan.job_duration)
    if operator_source is not None:
        harness.operator_source = operator_source.resolve()
        meta["operator_source"] = str(operator_source)
    meter = phases.StandInMeter()
    burst_profile = burst_profile_path(profile) if profile is not None else None
    try:
        idle: list[phases.IdleResult] = []
        for index, size in enumerate(plan.idle_workers):
            spy = profile if index == 0 else None
            idle += [
                phases.run_idle(
                    harness,
                    plan,
                    workers=size,
                    mode=mode,
                    progress=progress,
                    meter=meter,
                    profile=spy if mode == "polling" else None,
                )
                for mode in (("polling", "events") if events_run else ("polling",))
            ]
        shards = phases.run_shards(harness, plan, progress, meter, events=events_run)
        burst = phases.run_burst_operator(harness, plan, progress, meter, burst_profile)
        baselines, check = phases.run_baselines(harness, plan, progress, meter)
        raw = phases.run_burst_raw(harness, plan, progress, meter)
        by_operation: dict[str, list[float]] = defaultdict(list)
        for record in harness.codepipeline.requests():
            if record.operation not in BENCH_OPERATIONS:
                by_operation[record.operation].append(record.latency)
    finally:
        harness.stop()
    meta["duration_s"] = round(time.time() - started, 1)
    meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["notes"] = notes_for(plan, events_run)
    result = report.build(
        idle=idle,
        burst_operator=burst,
        burst_raw=raw,
        baselines=baselines,
        baseline_check=check,
        shards=shards,
        view=report.StandInView(by_operation, meter),
        ready_timeout=plan.ready_timeout,
        time_scale=plan.time_scale,
        metadata=meta,
    )
    if profile is not None and profile.exists():
        result["profile"] = profiling.summarize(profile, seconds=plan.idle_seconds)
        meta["notes"].append(
            "profiled with py-spy --nonblocking during the first idle window and the "
            "operator's burst (their figures include the sampler's small overhead)"
        )
    if burst_profile is not None and burst_profile.exists():
        result["profile_burst"] = profiling.summarize(
            burst_profile, seconds=burst.dispatch_seconds + burst.seconds_to_first
        )
    progress.done(f"finished in {meta['duration_s']:.0f} s")
    return result


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM ends the run through the phases' `finally` blocks, which stop the operator and
    the raw loop. Python's default would end this process alone: found when a killed run left
    its operator running for good, a core busy retrying an API server that was gone."""

    def terminate(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    _stop_cleanly_on_sigterm()
    if args.chart_from is not None:
        if args.png is None:
            print("cpworker bench: --chart-from needs --png PATH", file=sys.stderr)
            return 2
        chart.render(json.loads(args.chart_from.read_text()), args.png)
        return 0
    plan = plan_from(args)
    if args.png is not None:
        try:
            import matplotlib as mpl  # noqa: F401, PLC0415 - only --png needs it
        except ModuleNotFoundError:
            print(
                "cpworker bench: --png needs matplotlib: pip install 'cpworker[bench]'",
                file=sys.stderr,
            )
            return 2
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cpworker-bench-"))
    try:
        result = run(plan, workdir, args.profile, argv, args.operator_source)
    except phases.BenchError as exc:
        print(f"cpworker bench: {exc}\n(logs kept in {workdir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.png is not None:
        chart.render(result, args.png)
    print(report.render(result))
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
