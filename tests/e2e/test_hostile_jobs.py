"""Acceptance: hostile job data through both stand-ins.

Configuration values a pipeline may legally carry (shell metacharacters, Kubernetes' own
`$(VAR)` syntax, newlines, unicode) reach the job's container exactly as written and run
nothing; values no container can carry (a NUL) fail the job with ConfigurationError naming
the property; and a PollForJobs answer the service model allows but the operator does not
(100 input artifacts, handed out through the stand-in's `tamper` hook) fails the job the same
way. The pure path is fuzzed in tests/fuzz/test_hostile_jobs.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Stack, wait_for, worker_manifest

HOSTILE = {
    "Target": "$(AWS_SHARED_CREDENTIALS_FILE) $$HOME `touch {canary}`; touch {canary} #",
    "Motto": "line one\nline two\t\u202e日本語 🦄 'quoted' \"double\" \\back",
    "Money": "price: $$5 and $(",
}
# The container reports what it sees as output variables (CodePipeline shows them back).
REPORT = (
    "import json, os; json.dump({'summary': 'seen', 'outputVariables': {"
    "k: os.environ['CPWORKER_CONFIG_' + k.upper()] for k in ('Target', 'Motto', 'Money')}}, "
    "open(os.environ['CPWORKER_RESULT_FILE'], 'w'))"
)


def action_detail(stack: Stack, scenario: Any, execution: str) -> dict[str, Any]:
    details = stack.cp_client.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution}
    )["actionExecutionDetails"]
    return next(d for d in details if d["actionName"] == "Build")


def test_hostile_configuration_values_reach_the_container_exactly_and_run_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    configuration = {k: v.format(canary=canary) for k, v in HOSTILE.items()}
    scenario = stack.cp_scenario(configuration=configuration)
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(
            scenario,
            annotations={"sandbox.cpworker.io/exec": "local"},
            container={
                "name": "build",
                "image": "example.com/builder:1",
                "command": [sys.executable, "-c", REPORT],
            },
            # Without the artifact helpers: in local-exec mode they would really run against
            # S3, which is not what this test is about.
            spec={"artifacts": {"enabled": False}},
        )
    )
    execution = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution, timeout=60) == "Succeeded"
    seen = action_detail(stack, scenario, execution)["output"]["outputVariables"]
    assert seen == configuration  # byte for byte: no $(VAR) expansion, no $$ folding
    assert not canary.exists(), "a configuration value ran as a command"


def test_a_value_no_container_can_carry_fails_the_job_naming_the_property(stack: Stack) -> None:
    scenario = stack.cp_scenario(configuration={"Target": "all\x00rm"})
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario))
    execution = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution, timeout=60) == "Failed"
    error = action_detail(stack, scenario, execution)["output"]["executionResult"]["errorDetails"]
    assert error["code"] == "ConfigurationError"
    assert "configuration.Target" in error["message"]
    assert "NUL" in error["message"]
    assert not stack.cluster.jobs()
    assert "JobRejected" in stack.cluster.reasons_once("JobRejected")


def test_a_hundred_input_artifacts_fail_the_job_naming_the_limit(stack: Stack) -> None:
    scenario = stack.cp_scenario()
    execution = scenario.start(stack.cp_client)
    wait_for(lambda: scenario.status(stack.cp_client, execution) == "InProgress", what="running")

    def hundred_inputs(answer: dict[str, Any]) -> None:
        for job in answer.get("jobs", []):
            job["data"]["inputArtifacts"] = job["data"]["inputArtifacts"] * 100

    # The service model sets no maximum on a job's artifact list; the real service delivers
    # at most 5 (an action type's limit), and so does the operator.
    stack.codepipeline.tamper("PollForJobs", hundred_inputs)
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario))
    assert scenario.wait(stack.cp_client, execution, timeout=60) == "Failed"
    error = action_detail(stack, scenario, execution)["output"]["executionResult"]["errorDetails"]
    assert error["code"] == "ConfigurationError"
    assert "inputArtifacts" in error["message"]
    assert not stack.cluster.jobs()
    assert json.dumps(error)  # a readable answer, no crash
