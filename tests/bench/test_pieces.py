"""The benchmark's pure pieces: percentiles, policy models, profiles, the table, the CLI."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from cpworker.bench import cli, policies, profile, report, stats
from cpworker.bench.sqsproxy import operation_of


def test_percentiles_interpolate_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]
    assert stats.percentile(samples, 0) == 1.0
    assert stats.percentile(samples, 50) == pytest.approx(2.5)
    assert stats.percentile(samples, 100) == 4.0
    assert stats.percentile([], 50) is None
    assert stats.summary([])["p99"] is None
    assert stats.summary([2.0])["samples"] == 1


def test_rates_per_worker_hour() -> None:
    assert stats.per_worker_hour(60, workers=2, seconds=1800) == 60.0
    assert stats.per_worker_hour(5, workers=0, seconds=10) == 0.0
    assert stats.ratio(1.0, 0.0) is None
    assert stats.ratio(1.0, 4.0) == 0.25


@pytest.mark.parametrize("policy", policies.BASELINES, ids=lambda p: p.name)
def test_policy_models_wait_within_their_interval(policy: policies.PollingPolicy) -> None:
    rng = random.Random(3)
    for scale in (1.0, 20.0):
        low, high = policy.interval / scale, (policy.interval + policy.jitter) / scale
        delays = [policy.next_delay(rng, scale) for _ in range(200)]
        assert all(low <= d <= high for d in delays)
        assert all(0 <= policy.first_delay(rng, scale) <= high for _ in range(50))
    assert "model" in policy.label
    assert "not the product" in policy.label


def test_expected_idle_cost_of_the_models() -> None:
    costs = {p.name: p.expected_calls_per_worker_hour() for p in policies.BASELINES}
    assert costs["aws-java-sample"] == pytest.approx(120)
    assert costs["teamcity"] == pytest.approx(180)
    assert costs["jenkins"] == pytest.approx(3600 / 87.5)
    assert costs["buildkite-k8s"] == pytest.approx(3600)
    assert policies.by_name("raw-ceiling") is policies.CEILING


def test_sqs_operations_from_either_protocol() -> None:
    assert operation_of("AmazonSQS.ReceiveMessage", b"{}") == "ReceiveMessage"
    assert operation_of(None, b"Action=DeleteMessage&Version=2012-11-05") == "DeleteMessage"
    assert operation_of(None, b"") == "Unknown"


def test_profile_summary_sums_own_and_inclusive_samples(tmp_path: Path) -> None:
    folded = tmp_path / "profile.txt"
    folded.write_text(
        "run (asyncio/base_events.py:10);poll (cpworker/poller.py:20) 3\n"
        "run (asyncio/base_events.py:10);write (cpworker/kube.py:5) 1\n"
    )
    summary = profile.summarize(folded, rate=2.0, seconds=4.0)
    assert summary["samples"] == 4
    assert summary["active_share"] == 0.5
    assert summary["top_own"][0] == ["poll (cpworker/poller.py)", 0.75]
    assert summary["top_inclusive"][0] == ["run (asyncio/base_events.py)", 1.0]


def test_the_table_marks_targets_met_and_missed() -> None:
    document: dict[str, Any] = {
        "dispatch_latency_s": {"p50": 0.2, "p99": 4.0},
        "metadata": {"events": {"top_level_from": "polling"}, "notes": ["a note"]},
    }
    text = report.render(document)
    row50 = next(line for line in text.splitlines() if "dispatch latency p50" in line)
    row99 = next(line for line in text.splitlines() if "dispatch latency p99" in line)
    assert row50.rstrip().endswith("ok")
    assert row99.rstrip().endswith("MISS")
    assert "note: a note" in text
    assert "not read the events queue" in text


@pytest.mark.parametrize(
    ("jobs", "workers", "one_round"),
    [(300, 50, True), (100, 10, True), (1000, 50, False), (11, 1, False), (5, 0, True)],
)
def test_a_burst_that_fits_in_one_poll_round_is_flagged(
    jobs: int, workers: int, one_round: bool
) -> None:
    assert report.one_poll_round(jobs, workers) is one_round


def test_the_ratio_of_a_one_round_burst_is_not_judged() -> None:
    """300 jobs over 50 workers gave 0.80 of the raw loop in 1.2 s: the first poll round's
    parallel claims, not the sustained rate (1,000 over 50 gave 0.15 in 32 s)."""

    def ratio_row(*, one_round: bool) -> str:
        document = {"burst": {"ratio_to_raw": 0.8, "one_poll_round": one_round}}
        text = report.render(document)
        return next(line for line in text.splitlines() if "ratio to raw" in line).rstrip()

    assert ratio_row(one_round=False).endswith("ok")
    assert ratio_row(one_round=True).endswith("one poll round: not a rate")


def test_bad_sizes_are_refused_with_what_to_change(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.plan_from(cli.parse_args(["--quick", "--workers", "50", "--jobs", "10"]))
    assert "--workers must not exceed --jobs" in str(exit_info.value)
    with pytest.raises(SystemExit):
        cli.parse_args(["--idle-workers", "0"])
    assert "fleet sizes must be positive" in capsys.readouterr().err
    plan = cli.plan_from(cli.parse_args(["--quick", "--idle-workers", "5,7"]))
    assert plan.idle_workers == (5, 7)
    assert plan.quick
