"""Acceptance: kubectl apply a worker; a pipeline with two custom actions runs to Succeeded."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import NAMESPACE, Cluster, wait_for, worker_manifest

RESULT = {
    "summary": "built 3 targets",
    "outputVariables": {"IMAGE_TAG": "v1.2.3", "ARTIFACTS": "3"},
}


def test_two_custom_actions_succeed(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any, kubectl: Any
) -> None:
    scenario = cp_scenario(actions=("Build", "Test"))
    operator_thread()
    cluster.apply(
        worker_manifest(
            scenario,
            annotations={
                "sandbox.cpworker.io/duration": "300ms",
                "sandbox.cpworker.io/termination-message": json.dumps(RESULT),
            },
        )
    )
    wait_for(lambda: (cluster.condition() or {}).get("status") == "True", what="the worker Ready")

    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id, timeout=60) == "Succeeded"

    actions = cp_client.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    custom = {a["actionName"]: a for a in actions if a["actionName"] in {"Build", "Test"}}
    assert set(custom) == {"Build", "Test"}
    job_names = {job["metadata"]["name"] for job in cluster.jobs()}
    for action in custom.values():
        assert action["status"] == "Succeeded"
        output = action["output"]
        assert output["executionResult"]["externalExecutionSummary"] == RESULT["summary"]
        external_id = output["executionResult"]["externalExecutionId"]
        namespace, job_name = external_id.split("/")
        assert namespace == NAMESPACE
        assert job_name in job_names
        assert output["outputVariables"] == RESULT["outputVariables"]

    # Each job ran as exactly one Kubernetes Job, reported and without its Secret. The record
    # is marked reported only after CodePipeline has the result (so a crash in between reports
    # again): the pipeline can show Succeeded a moment before the mark is written.
    def all_reported() -> list[dict[str, Any]] | None:
        found = cluster.jobs()
        phases = [j["metadata"].get("annotations", {}).get("cpworker.io/phase") for j in found]
        return found if phases and all(p == "reported" for p in phases) else None

    jobs = wait_for(all_reported, what="both Jobs marked reported")
    assert len(jobs) == 2
    for job in jobs:
        assert job["metadata"]["annotations"]["cpworker.io/phase"] == "reported"
        assert job["metadata"]["annotations"]["cpworker.io/result"] == "succeeded"
        # The TTL is set only once CodePipeline has the result (the operator's default).
        assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    wait_for(lambda: not cluster.secrets(), what="the job Secrets deleted")

    def counted() -> dict[str, Any] | None:
        status = (cluster.worker() or {}).get("status") or {}
        return status if status.get("succeeded") == 2 else None

    status = wait_for(counted, what="succeeded == 2 in the status")
    assert status["failed"] == 0  # counters start at 0, so the column never shows blank
    # What `kubectl get caw` prints, from the Table API and from kubectl itself.
    row = cluster.table()
    assert row["Name"] == "builds"
    assert row["Ready"] == "True"
    assert row["Succeeded"] == "2"
    assert row["Failed"] == "0"
    header, line = kubectl("get", "caw", "-n", NAMESPACE).stdout.splitlines()[:2]
    columns = dict(zip(header.split(), line.split(), strict=False))
    assert columns["NAME"] == "builds"
    assert columns["READY"] == "True"
    assert columns["SUCCEEDED"] == "2"
    assert columns["FAILED"] == "0"
    reasons = cluster.reasons_once(*["JobDispatched", "JobSucceeded"] * 2)
    assert reasons.count("JobDispatched") == 2
    assert reasons.count("JobSucceeded") == 2
    assert "JobCancelled" not in reasons
