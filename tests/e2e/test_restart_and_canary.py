"""Acceptance: restart safety at every stage boundary, and canary secrets never leak.

The operator runs as `cpworker run` in a subprocess. `CPWORKER_TEST_CRASH_AT=<stage>` makes
it exit abruptly (os._exit) at that boundary; a fresh operator must then finish the job:
dispatched exactly once, reported once, nothing lost.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from cpworker.runtime import CRASH_EXIT_CODE
from tests.e2e.conftest import Stack, wait_for, worker_manifest

STAGES = [
    "before-job",  # polled, nothing written yet
    "before-secret",  # suspended Job exists, no Secret
    "before-ack",  # Job and Secret exist, not acknowledged
    "after-ack",  # acknowledged, Job still suspended (phase claiming)
    "before-release",  # nonce recorded, Job still suspended
    "after-release",  # Job running
    "after-put",  # result sent, Job not yet marked reported
]


@pytest.mark.parametrize("stage", STAGES)
def test_operator_restarted_at_each_stage_boundary(
    stack: Stack, operator_process: Any, stage: str
) -> None:
    scenario = stack.cp_scenario()
    # An unacknowledged delivery is handed out again after this long.
    stack.codepipeline.config.redelivery_window = 1.0
    stack.cluster.apply(
        worker_manifest(
            scenario,
            annotations={
                "sandbox.cpworker.io/duration": "300ms",
                "sandbox.cpworker.io/termination-message": '{"summary": "ok"}',
            },
        )
    )
    execution_id = scenario.start(stack.cp_client)

    crashing = operator_process(crash_at=stage)
    assert crashing.wait_exit(timeout=60) == CRASH_EXIT_CODE, crashing.output[-3000:]

    survivor = operator_process()
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded", survivor.output[
        -3000:
    ]
    # Exactly one Kubernetes Job ran exactly one pod for the one CodePipeline job.
    jobs = stack.cluster.jobs()
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    pods = stack.cluster.pods()
    assert len(pods) == 1
    accepted = [
        r
        for r in stack.codepipeline.requests()
        if r.operation == "PutJobSuccessResult" and r.outcome == "ok"
    ]
    assert len(accepted) == 1
    wait_for(
        lambda: (
            jobs[0]["metadata"]["name"]
            and (stack.cluster.jobs() or [{}])[0]["metadata"]["annotations"].get(
                "cpworker.io/phase"
            )
            == "reported"
        ),
        what="the Job marked reported",
    )
    wait_for(lambda: not stack.cluster.secrets(), what="the Secret deleted")


CANARY_SECRET_KEY = "CANARYsecretKEY0123456789abcdefghijklmnop"
CANARY_SESSION_TOKEN = "CANARYsessionTOKEN" + "x" * 100
CANARY_CONFIG = "canary-config-value-7f3a9c"


def test_canary_secrets_never_leak(stack: Stack, operator_process: Any) -> None:
    scenario = stack.cp_scenario(secret_configuration={"ApiToken": CANARY_CONFIG})
    # The job is queued first, so that the very first poll answer carries the canaries.
    execution_id = scenario.start(stack.cp_client)
    wait_for(
        lambda: scenario.status(stack.cp_client, execution_id) == "InProgress",
        what="the execution running",
    )

    def plant(answer: dict[str, Any]) -> None:
        for job in answer.get("jobs", []):
            job["data"]["artifactCredentials"]["secretAccessKey"] = CANARY_SECRET_KEY
            job["data"]["artifactCredentials"]["sessionToken"] = CANARY_SESSION_TOKEN

    stack.codepipeline.tamper("PollForJobs", plant)
    operator = operator_process(log_level="DEBUG", log_format="json")
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "500ms"})
    )

    # The canaries did reach the job's Secret (so the test can fail), base64-encoded.
    def secret_data() -> str:
        decoded = ""
        for secret in stack.cluster.secrets():
            for value in (secret.get("data") or {}).values():
                decoded += base64.b64decode(value).decode(errors="replace")
        return decoded

    planted = wait_for(secret_data, what="the job Secret")
    assert CANARY_SECRET_KEY in planted
    assert CANARY_CONFIG in planted
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"
    wait_for(
        lambda: ((stack.cluster.worker() or {}).get("status") or {}).get("succeeded") == 1,
        what="the job counted",
    )
    # The job's Event comes after its count and its record: wait for it, then look.
    wait_for(
        lambda: any(e.get("reason") == "JobSucceeded" for e in stack.cluster.events()),
        what="the JobSucceeded event",
    )

    visible = {
        "operator log": operator.output,
        "events": json.dumps(stack.cluster.events()),
        "worker": json.dumps(stack.cluster.worker()),
        "jobs": json.dumps(stack.cluster.jobs()),
        "pods": json.dumps(stack.cluster.pods()),
        "action executions": json.dumps(
            stack.cp_client.list_action_executions(pipelineName=scenario.pipeline_name)[
                "actionExecutionDetails"
            ],
            default=str,
        ),
    }
    assert "JobSucceeded" in visible["events"]
    for where, text in visible.items():
        for canary in (CANARY_SECRET_KEY, CANARY_SESSION_TOKEN, CANARY_CONFIG):
            assert canary not in text, f"a canary secret leaked into the {where}"


def test_operator_restarted_between_hand_over_and_its_record(
    stack: Stack, operator_process: Any
) -> None:
    scenario = stack.cp_scenario()
    stack.codepipeline.config.continuation_delay = 2.0
    stack.cluster.apply(
        worker_manifest(
            scenario,
            annotations={
                "sandbox.cpworker.io/duration": "5s",
                "sandbox.cpworker.io/termination-message": '{"summary": "long job done"}',
            },
        )
    )
    execution_id = scenario.start(stack.cp_client)
    crashing = operator_process(crash_at="after-handover", continuation_after_seconds=1.0)
    assert crashing.wait_exit(timeout=60) == CRASH_EXIT_CODE, crashing.output[-3000:]

    survivor = operator_process()
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded", survivor.output[
        -3000:
    ]
    jobs = stack.cluster.jobs()
    assert len(jobs) == 1
    assert jobs[0]["metadata"]["annotations"].get("cpworker.io/continuation-of")
    reasons = [e["reason"] for e in stack.cluster.events()]
    assert "JobCancelled" not in reasons
