"""`cpworker run` as users start it: settings errors are clear, and it runs the operator."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.e2e.conftest import Stack, worker_manifest


def test_invalid_settings_exit_2_listing_every_problem() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CPWORKER_")},
        "CPWORKER_RATE_PER_SECOND": "-1",
        "CPWORKER_LOG_FORMAT": "xml",
    }
    result = subprocess.run(
        [sys.executable, "-m", "cpworker.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CPWORKER_RATE_PER_SECOND" in result.stderr
    assert "CPWORKER_LOG_FORMAT" in result.stderr


def test_cpworker_run_serves_a_pipeline(stack: Stack, operator_process: Any) -> None:
    scenario = stack.cp_scenario()
    operator = operator_process(log_format="json")
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "200ms"})
    )
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded", operator.output[
        -2000:
    ]
    # Structured logs: one JSON object per line.
    lines = [line for line in operator.output.splitlines() if line.startswith("{")]
    assert lines
