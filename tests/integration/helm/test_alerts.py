"""The chart's alerting rules: rendered only when enabled, valid for promtool, right in unit
cases (`promtool test rules`), and reading only metrics the operator exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from cpworker.metrics import Metrics
from tests.integration.helm.chart import CHART_DIR, by_kind, manifests, one
from tests.promql import exported_series, metric_names

RULES_FILE = CHART_DIR / "files" / "prometheus-rules.yaml"
ENABLED = {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; "
    ".ci/debian-packages.txt lists it)",
)
_LABEL_TEMPLATE = re.compile(r"\{\{ \$labels\.([a-z_]+) \}\}")


def _rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in spec["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def spec(chart: helm.Chart) -> dict[str, Any]:
    """The rule groups as the chart ships them (the PrometheusRule's spec)."""
    rendered: dict[str, Any] = one(manifests(chart, ENABLED), "PrometheusRule")["spec"]
    return rendered


def test_rendered_only_when_enabled_and_as_the_rule_file_says(
    chart: helm.Chart, spec: dict[str, Any]
) -> None:
    assert by_kind(manifests(chart), "PrometheusRule") == []
    rule = one(manifests(chart, ENABLED), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert spec == yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert {r["alert"] for r in _rules(spec)} == {
        "CpworkerWorkerNotReady",
        "CpworkerJobFailureRatioHigh",
        "CpworkerCodePipelineThrottled",
        "CpworkerJobInFlightPastDeadline",
        "CpworkerNoSuccessfulPoll",
    }


def test_every_expression_reads_metrics_the_operator_exports(spec: dict[str, Any]) -> None:
    exported = exported_series(Metrics().registry)
    for rule in _rules(spec):
        used = metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in its expression"
        assert used <= exported, f"{rule['alert']} reads {sorted(used - exported)}"


def test_the_name_check_can_fail() -> None:
    exported = exported_series(Metrics().registry)
    assert metric_names("rate(cpworker_jobs_totl[5m]) > 0") - exported == {"cpworker_jobs_totl"}


def test_every_alert_says_what_happened_and_what_to_do(spec: dict[str, Any]) -> None:
    for rule in _rules(spec):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        for text in annotations.values():
            # Only $labels templates: the unit cases below compute each text exactly.
            assert "{{" not in _LABEL_TEMPLATE.sub("", text), rule["alert"]


def _expand(text: str, labels: dict[str, str]) -> str:
    return _LABEL_TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), text)


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _worker(name: str, values: str, worker: str, **labels: str) -> dict[str, str]:
    return _series(name, values, namespace="ci", worker=worker, **labels)


def _calls(region: str, *, throttled: str, ok: str) -> list[dict[str, str]]:
    name = "cpworker_codepipeline_requests_total"
    return [
        _series(name, throttled, region=region, operation="PollForJobs", outcome="throttled"),
        _series(name, ok, region=region, operation="PollForJobs", outcome="ok"),
    ]


def _polling(
    worker: str, *, last_success: str, max_interval: str, free: str
) -> list[dict[str, str]]:
    return [
        _worker("cpworker_worker_last_successful_poll_timestamp_seconds", last_success, worker),
        _worker("cpworker_worker_poll_max_interval_seconds", max_interval, worker),
        _worker("cpworker_worker_free_capacity_jobs", free, worker),
    ]


# (alert, input series, [(eval time, [expected alert labels])]): each case shows the alert
# staying silent before its time and for the series that must not trigger it.
CASES: list[tuple[str, list[dict[str, str]], list[tuple[str, list[dict[str, str]]]]]] = [
    (
        "CpworkerWorkerNotReady",
        [
            _worker("cpworker_worker_ready", "0x20", "denied"),
            _worker("cpworker_worker_ready_reason", "1x20", "denied", reason="AccessDenied"),
            _worker("cpworker_worker_ready", "0x20", "paused"),
            _worker("cpworker_worker_ready_reason", "1x20", "paused", reason="Paused"),
            _worker("cpworker_worker_ready", "1x20", "fine"),
            _worker("cpworker_worker_ready_reason", "1x20", "fine", reason="Polling"),
        ],
        [("9m", []), ("11m", [{"namespace": "ci", "worker": "denied"}])],
    ),
    (
        "CpworkerJobFailureRatioHigh",
        [
            _worker("cpworker_jobs_total", "0+1x60", "broken", outcome="failed"),
            _worker("cpworker_jobs_total", "0+0.2x60", "broken", outcome="succeeded"),
            # One failure of one job: a high ratio, but too few jobs to page anyone.
            _worker("cpworker_jobs_total", "0x20 1x40", "rare", outcome="failed"),
            _worker("cpworker_jobs_total", "0+0.1x60", "fine", outcome="failed"),
            _worker("cpworker_jobs_total", "0+1x60", "fine", outcome="succeeded"),
        ],
        [("10m", []), ("40m", [{"namespace": "ci", "worker": "broken"}])],
    ),
    (
        "CpworkerCodePipelineThrottled",
        [
            *_calls("us-east-1", throttled="0+2x60", ok="0+8x60"),  # 20% throttled
            *_calls("eu-west-1", throttled="0+0.1x60", ok="0+9.9x60"),  # 1% throttled
        ],
        [("12m", []), ("30m", [{"region": "us-east-1"}])],
    ),
    (
        "CpworkerJobInFlightPastDeadline",
        [
            _worker("cpworker_worker_oldest_in_flight_job_age_seconds", "0+60x40", "stuck"),
            _worker("cpworker_worker_job_deadline_seconds", "600x40", "stuck"),
            _worker("cpworker_worker_oldest_in_flight_job_age_seconds", "0+60x40", "long"),
            _worker("cpworker_worker_job_deadline_seconds", "3300x40", "long"),
        ],
        [("24m", []), ("30m", [{"namespace": "ci", "worker": "stuck"}])],
    ),
    (
        "CpworkerNoSuccessfulPoll",
        [
            *_polling("failing", last_success="0x30", max_interval="60x30", free="3x30"),
            # At capacity: it does not poll, and that is fine.
            *_polling("busy", last_success="0x30", max_interval="60x30", free="0x30"),
            # Polls every 15 minutes when idle: silent for 30 minutes.
            *_polling("slow", last_success="0x30", max_interval="900x30", free="3x30"),
            *_polling("fine", last_success="0+60x30", max_interval="60x30", free="3x30"),
        ],
        [("10m", []), ("13m", [{"namespace": "ci", "worker": "failing"}])],
    ),
]


def _unit_tests(spec: dict[str, Any]) -> dict[str, Any]:
    """A promtool test file for CASES, expected annotations expanded from the rules."""
    rules = {rule["alert"]: rule for rule in _rules(spec)}
    tests = []
    for alert, series, evaluations in CASES:
        rule = rules[alert]
        checks = []
        for eval_time, expected in evaluations:
            alerts = [
                {
                    "exp_labels": {**rule["labels"], **labels},
                    "exp_annotations": {
                        key: _expand(text, labels) for key, text in rule["annotations"].items()
                    },
                }
                for labels in expected
            ]
            checks.append({"eval_time": eval_time, "alertname": alert, "exp_alerts": alerts})
        tests.append({"interval": "1m", "input_series": series, "alert_rule_test": checks})
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _write(directory: Path, spec: dict[str, Any], tests: dict[str, Any]) -> None:
    (directory / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    (directory / "tests.yaml").write_text(yaml.safe_dump(tests), encoding="utf-8")


@needs_promtool
def test_promtool_accepts_the_rules(spec: dict[str, Any], tmp_path: Path) -> None:
    _write(tmp_path, spec, _unit_tests(spec))
    result = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules(spec))} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_cases(spec: dict[str, Any], tmp_path: Path) -> None:
    _write(tmp_path, spec, _unit_tests(spec))
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_cases_can_fail(spec: dict[str, Any], tmp_path: Path) -> None:
    """A wrong expectation (the paused worker alerting) makes promtool fail."""
    tests = _unit_tests(spec)
    expected = tests["tests"][0]["alert_rule_test"][1]["exp_alerts"]
    expected.append(
        {**expected[0], "exp_labels": {**expected[0]["exp_labels"], "worker": "paused"}}
    )
    _write(tmp_path, spec, tests)
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "CpworkerWorkerNotReady" in result.stdout + result.stderr
