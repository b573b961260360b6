"""The operator's own endpoint: /healthz runs its liveness probes and /metrics serves its
metrics, for `cpworker run --liveness` and for each in-process operator (several per process,
each on its own port with its own registry)."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from tests.e2e.conftest import Stack, wait_for
from tests.scrape import scrape

SERVING = re.compile(r"serving /healthz and /metrics at (http://127\.0\.0\.1:\d+)")


def healthz(base_url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(f"{base_url}/healthz", timeout=10) as response:
        return response.status, json.loads(response.read())


def test_each_in_process_operator_serves_its_own_endpoint(stack: Stack) -> None:
    first = stack.start_operator()
    second = stack.start_operator()
    assert first.health_url is not None
    assert second.health_url is not None
    assert first.health_url != second.health_url
    for operator in (first, second):
        status, body = healthz(str(operator.health_url))
        assert status == 200
        assert body["kubernetes_api"].startswith("v")  # the API server's gitVersion
        assert body["workers"] == 0
        metrics = scrape(str(operator.metrics_url))
        families = metrics.families()
        assert families["cpworker_jobs"] == "counter"
        assert families["cpworker_job_dispatch_duration_seconds"] == "histogram"
        assert metrics.value("cpworker_build_info") == 1
        assert metrics.value("process_resident_memory_bytes") > 0
    assert first.metrics is not None
    assert second.metrics is not None
    first.metrics.job_lost_race("default", "builds")
    assert scrape(str(first.metrics_url)).value("cpworker_jobs_total") == 1
    assert scrape(str(second.metrics_url)).value("cpworker_jobs_total") == 0


def test_cpworker_run_liveness_serves_healthz_and_metrics(operator_process: Any) -> None:
    operator = operator_process(args=["--liveness"])
    match = wait_for(lambda: SERVING.search(operator.output), timeout=60, what="the endpoint")
    base_url = match.group(1)
    status, body = wait_for(lambda: healthz(base_url), what="/healthz")
    assert status == 200
    assert set(body) == {"kubernetes_api", "workers"}
    assert scrape(f"{base_url}/metrics").value("cpworker_build_info") == 1
