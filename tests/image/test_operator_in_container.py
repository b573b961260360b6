"""The whole pipeline with the operator inside its image: a worker applied with kubectl, a
pipeline execution started, its custom action run as a Kubernetes Job and reported.

The operator container runs as the chart runs it (uid 65532, read-only root, /tmp tmpfs, the
chart's arguments and environment, `--liveness`), with the kubeconfig mounted read-only in
place of the in-cluster service account; `--network=host` reaches the stand-ins on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import (
    FAST_SETTINGS,
    NAMESPACE,
    Cluster,
    env_settings,
    wait_for,
    worker_manifest,
)
from tests.image.conftest import BUILD_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT)]

RESULT = {"summary": "built in a container", "outputVariables": {"IMAGE_TAG": "v9"}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_operator_in_the_image_runs_a_job_and_reports_it(
    operator_container: Any, cp_scenario: Any, cp_client: Any, cluster: Cluster
) -> None:
    scenario = cp_scenario()
    port = _free_port()
    settings = {**FAST_SETTINGS, "log_format": "json", "health_port": port}
    operator = operator_container(
        "--namespace", NAMESPACE, "--standalone", "--liveness", env=env_settings(settings)
    )
    wait_for(
        lambda: _healthy(port) or not operator.running(),
        timeout=120,
        what="the operator's /healthz in the container",
    )
    assert operator.running(), operator.logs()[-3000:]

    cluster.apply(
        worker_manifest(
            scenario,
            annotations={
                "sandbox.cpworker.io/duration": "200ms",
                "sandbox.cpworker.io/termination-message": json.dumps(RESULT),
            },
        )
    )
    wait_for(
        lambda: (cluster.condition() or {}).get("status") == "True",
        timeout=60,
        what="the worker Ready",
    )
    execution_id = scenario.start(cp_client)
    status = scenario.wait(cp_client, execution_id, timeout=120)
    assert status == "Succeeded", operator.logs()[-3000:]

    actions = cp_client.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    (build,) = [a for a in actions if a["actionName"] == "Build"]
    result = build["output"]["executionResult"]
    assert result["externalExecutionSummary"] == RESULT["summary"]
    assert build["output"]["outputVariables"] == RESULT["outputVariables"]

    # The operator reports to CodePipeline first, then records it on the Job, then posts the
    # event (reporter.py): the execution can be over a moment before both.
    def reported() -> dict[str, Any] | None:
        (job,) = cluster.jobs()
        phase = job["metadata"]["annotations"].get("cpworker.io/phase")
        return job if phase == "reported" else None

    job = wait_for(reported, timeout=30, what="the Job annotated reported")
    assert result["externalExecutionId"] == f"{NAMESPACE}/{job['metadata']['name']}"
    assert job["metadata"]["annotations"]["cpworker.io/result"] == "succeeded"

    def succeeded_event() -> list[str] | None:
        reasons = [event["reason"] for event in cluster.events()]
        return reasons if "JobSucceeded" in reasons else None

    reasons = wait_for(succeeded_event, timeout=30, what="the JobSucceeded event")
    assert "JobDispatched" in reasons

    # The chart's json log format: one JSON object per line, from inside the container.
    lines = [line for line in operator.logs().splitlines() if line.startswith("{")]
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines)
    # SIGTERM, as the kubelet stops a pod: the operator shuts down cleanly.
    assert operator.stop() == 0, operator.logs()[-3000:]
