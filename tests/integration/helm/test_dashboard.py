"""The Grafana dashboard: every query reads metrics the operator exports and is valid PromQL
(promtool parses it), and the chart ships it as a sidecar ConfigMap only when enabled."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from cpworker.metrics import Metrics
from tests.integration.helm.chart import CHART_DIR, by_kind, manifests, one
from tests.promql import exported_series, metric_names

DASHBOARD_FILE = CHART_DIR / "files" / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
# Grafana's variables, replaced by values a query would see.
_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$worker": ".*", "$job": ".*"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            yield panel


def _queries(dashboard: dict[str, Any]) -> list[str]:
    expressions = [t["expr"] for panel in _panels(dashboard) for t in panel["targets"]]
    variables = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return expressions + variables


def _promql(expression: str) -> str:
    for variable, value in _VARIABLES.items():
        expression = expression.replace(variable, value)
    # label_values(metric, label) is Grafana's, not PromQL: its selector is what Prometheus runs.
    match = re.fullmatch(r"label_values\((.+), *\w+\)", expression)
    return match.group(1) if match else expression


def test_every_query_reads_metrics_the_operator_exports(dashboard: dict[str, Any]) -> None:
    exported = exported_series(Metrics().registry)
    for query in _queries(dashboard):
        used = metric_names(_promql(query))
        assert used, f"no metric in {query}"
        assert used <= exported, f"{sorted(used - exported)} in {query}"


def test_the_dashboard_covers_what_operators_watch(dashboard: dict[str, Any]) -> None:
    used = {name for query in _queries(dashboard) for name in metric_names(_promql(query))}
    for needed in (
        "cpworker_job_dispatch_duration_seconds_bucket",  # dispatch latency
        "cpworker_job_stage_duration_seconds_bucket",
        "cpworker_jobs_total",  # throughput and outcomes
        "cpworker_codepipeline_requests_total",  # API calls and throttling
        "cpworker_codepipeline_rate_budget_wait_seconds_bucket",
        "cpworker_kubernetes_requests_total",
        "cpworker_worker_in_flight_jobs",  # in flight per worker
        "cpworker_worker_free_capacity_jobs",
        "cpworker_worker_ready_reason",
    ):
        assert needed in used, needed


def test_panels_are_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "cpworker-operator"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "worker"} <= variables
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert {t["refId"] for t in panel["targets"]} == {
            chr(65 + i) for i in range(len(panel["targets"]))
        }


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; "
    ".ci/debian-packages.txt lists it)",
)
def test_promtool_parses_every_query(dashboard: dict[str, Any], tmp_path: Path) -> None:
    assert PROMTOOL is not None
    queries = _queries(dashboard)
    rules = [
        {"record": f"cpworker:dashboard_query_{i}", "expr": _promql(q)}
        for i, q in enumerate(queries)
    ]
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    result = subprocess.run(
        [PROMTOOL, "check", "rules", "queries.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_chart_ships_the_dashboard_only_when_enabled(chart: helm.Chart) -> None:
    assert by_kind(manifests(chart), "ConfigMap") == []
    values = {
        "metrics": {
            "dashboard": {
                "enabled": True,
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "CI"},
            }
        }
    }
    config_map = one(manifests(chart, values), "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "CI"}
    shipped = json.loads(config_map["data"]["cpworker.json"])
    assert shipped == json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
