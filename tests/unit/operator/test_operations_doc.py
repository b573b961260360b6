"""docs/operations.md covers every metric the operator exports, every alert the chart ships
and every Ready reason, and its examples are what `cpworker check` prints."""

from __future__ import annotations

from pathlib import Path

import yaml

from cpworker import metrics, preflight
from cpworker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
RULES = ROOT / "helm" / "cpworker" / "files" / "prometheus-rules.yaml"


def test_every_metric_is_documented() -> None:
    for family in Metrics(process_metrics=False).registry.collect():
        exposed = f"{family.name}_total" if family.type == "counter" else family.name
        assert f"`{exposed}`" in DOC, exposed


def test_every_alert_is_documented() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert f"`{rule['alert']}`" in DOC, rule["alert"]


def test_every_ready_reason_is_documented() -> None:
    for reason in metrics.READY_REASONS:
        assert f"| `{reason}` |" in DOC, reason


def test_the_example_report_has_the_shape_check_prints() -> None:
    example = DOC.split("```text\n", 1)[1].split("```", 1)[0]
    report = preflight.render(
        [
            preflight.ok("a", "b"),
            preflight.problem("c", "d", "e"),
        ]
    )
    assert example.splitlines()[0] == report.splitlines()[0]
    assert "  FAIL  " in example
    assert "     what to do: " in example
    assert "problem(s):" in example
