"""A seconds-long `cpworker bench` run, so that the benchmark cannot rot.

It runs the real command (the operator as `cpworker run`, the raw loop, the baseline models,
the stand-ins) at toy sizes and checks that the report has every key with sane types and
consistent values. No timing is asserted: the machine is shared and noisy.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cpworker.bench import policies
from cpworker.bench.phases import shard_user

STALE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: gone, user: {token: stale}}]
contexts: [{name: gone, context: {cluster: gone, user: gone}}]
current-context: gone
"""

# The keys the issue promises, and their leaves (None: a latency without samples).
REQUIRED: dict[str, Any] = {
    "dispatch_latency_s": ["p50", "p95", "p99"],
    "report_latency_s": ["p50", "p99"],
    "burst": ["jobs", "jobs_per_s", "raw_jobs_per_s", "ratio_to_raw"],
    "idle": [
        "workers",
        "rss_mib",
        "cpu_share",
        "codepipeline_calls_per_worker_hour",
        "sqs_calls_per_hour",
        "seconds_until_all_ready",
    ],
    "economy": ["codepipeline_calls_per_job", "kubernetes_writes_per_job"],
}
SMOKE = [
    "--quick",
    "--jobs", "6",
    "--workers", "2",
    "--idle-workers", "3",
    "--idle-seconds", "1",
    "--idle-jobs", "2",
    "--baseline-workers", "1",
    "--baseline-jobs", "1",
    "--baseline-seconds", "1",
    "--shard-workers", "4",
    "--shard-jobs", "2",
    "--shard-seconds", "1",
    "--steady-timeout", "20",
    "--drain-timeout", "10",
    "--ready-timeout", "60",
    "--time-scale", "60",
    "--job-duration", "0.2",
]  # fmt: skip


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_latency(figures: dict[str, Any], where: str) -> None:
    assert isinstance(figures["samples"], int), where
    assert isinstance(figures["lower_bound"], bool), where
    quantiles = [figures[q] for q in ("p50", "p95", "p99") if q in figures]
    if figures["samples"] == 0:
        assert all(q is None for q in quantiles), where
        return
    assert all(_number(q) and q >= 0 for q in quantiles), (where, figures)
    assert quantiles == sorted(quantiles), (where, figures)
    assert figures["max"] >= quantiles[-1], (where, figures)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    # A --workdir reused from an earlier run: its shard identities name that run's stand-in.
    (out / "work").mkdir()
    for shard in ("a", "b"):
        (out / "work" / f"{shard_user(shard)}.kubeconfig").write_text(STALE_KUBECONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPWORKER_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cpworker.cli",
            "bench",
            *SMOKE,
            "--json",
            str(out / "bench.json"),
            "--png",
            str(out / "bench.png"),
            "--workdir",
            str(out / "work"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    assert "P1 dispatch latency p50" in done.stdout  # the table
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result: dict[str, Any] = json.loads((out / "bench.json").read_text())
    return result


def test_every_promised_key_has_a_sane_value(report: dict[str, Any]) -> None:
    for section, keys in REQUIRED.items():
        for key in keys:
            value = report[section][key]
            if section.endswith("latency_s"):
                assert value is None or (_number(value) and value >= 0), (section, key)
            else:
                assert _number(value), (section, key, value)
                assert value >= 0, (section, key, value)
    _check_latency(report["dispatch_latency_s"], "dispatch")
    _check_latency(report["report_latency_s"], "report")
    polling = report["polling_only"]
    _check_latency(polling["dispatch_latency_s"], "polling dispatch")
    assert _number(polling["codepipeline_calls_per_worker_hour"])
    assert set(report["baselines"]) == {p.name for p in policies.BASELINES}
    for name, baseline in report["baselines"].items():
        _check_latency(baseline["dispatch_latency_s"], name)
        assert _number(baseline["codepipeline_calls_per_worker_hour"]), name
        assert "not the product" in baseline["label"], name


def test_figures_agree_with_the_run_that_made_them(report: dict[str, Any]) -> None:
    burst, idle = report["burst"], report["idle"]
    assert burst["jobs"] == 6
    assert idle["workers"] == 3
    assert 0 <= idle["cpu_share"] <= 2  # a fraction of one core, on a 2-core machine
    assert idle["ready_workers"] <= idle["workers"]
    if burst["raw_jobs_per_s"]:
        assert burst["ratio_to_raw"] == pytest.approx(
            burst["jobs_per_s"] / burst["raw_jobs_per_s"], rel=0.01
        )
    # Every dispatched burst job was claimed once: one AcknowledgeJob per job at least.
    calls = burst["operator"]["codepipeline_calls_by_operation"]
    assert calls.get("AcknowledgeJob", 0) >= burst["operator"]["dispatched"]
    # The raw loop makes only the necessary calls: two Kubernetes writes per job.
    raw = burst["raw"]
    assert sum(raw["kubernetes_writes_by_resource"].values()) == 2 * raw["dispatched"]
    assert (
        report["baseline_poll_check"]["client_polls"]
        == report["baseline_poll_check"]["server_polls"]
    )
    meta = report["metadata"]
    assert meta["events"]["top_level_from"] in {"polling", "events"}
    assert meta["command"].startswith("cpworker bench")
    assert meta["machine"]["cpus"] >= 1


def test_two_shards_split_the_fleet_and_dispatch_each_job_once(report: dict[str, Any]) -> None:
    shards = report["shards"]
    assert shards["shards"] == 2
    assert shards["workers"] == 4
    assert shards["workers_expected_per_shard"] == {"a": 2, "b": 2}
    assert shards["jobs"]["started"] == 2
    # Counted from the stand-ins' logs: these would show a shard acting on the other's work.
    for key in (
        "overlap_workers",
        "workers_served_by_the_other_shard",
        "jobs_written_by_both_shards",
        "jobs_written_by_the_other_shard",
        "duplicate_job_creations",
        "jobs_with_more_than_one_result",
    ):
        assert shards[key] == 0, (key, shards)
    assert shards["results_per_job_max"] <= 1
    _check_latency(shards["dispatch_latency_s"], "shards dispatch")


def test_the_operators_own_figures_are_read(report: dict[str, Any]) -> None:
    idle = report["idle"]
    lag = idle["event_loop_lag_s"]
    assert lag["samples"] > 0  # the operator's cpworker_event_loop_lag_seconds
    assert lag["p99_at_most"] is None or lag["p99_at_most"] >= lag["p50_at_most"]
    assert set(idle["rate_budget_wait_s"]) == {"urgent", "poll"}
    economy = report["economy"]
    assert (
        economy["kubernetes_record_writes_per_job"]
        <= economy["kubernetes_writes_per_job_without_events"]
        <= economy["kubernetes_writes_per_job"]
    )


def _children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux: /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found |= {int(child) for child in children.read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_terminated_run_stops_the_operator_it_started(tmp_path: Path) -> None:
    """Found when a killed run left its `cpworker run` going for good, a core busy retrying
    an API server that had gone with the benchmark."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPWORKER_")}
    long_idle = [*SMOKE, "--idle-seconds", "300"]  # the last value of an option wins
    with (tmp_path / "bench.log").open("wb") as log:
        bench = subprocess.Popen(
            [sys.executable, "-m", "cpworker.cli", "bench", *long_idle],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    operators: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not operators and time.monotonic() < deadline and bench.poll() is None:
            time.sleep(0.2)
            operators = {
                child
                for child in _children(bench.pid)
                if b"cpworker.cli\x00run" in Path(f"/proc/{child}/cmdline").read_bytes()
            }
        assert operators, (tmp_path / "bench.log").read_text()[-2000:]
        bench.terminate()
        code = bench.wait(timeout=90)
        survivors = {pid for pid in operators if _alive(pid)}
        assert not survivors, f"operators still running after the benchmark ended: {survivors}"
        assert code == 128 + signal.SIGTERM
    finally:
        bench.kill()
        bench.wait()
        for pid in operators:  # a failure above must not leave one running either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
