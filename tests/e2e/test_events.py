"""Acceptance: CodePipeline's action events wake workers at once; polling stays the safety net.

Each test gives the worker an idle interval of an hour after its first poll, so that only an
event can make it poll again within the test's time: a job that runs at all was woken by one.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from cpworker.sandbox.codepipeline.environment import (
    REGION,
)
from cpworker.sandbox.codepipeline.events import Subscription
from tests.e2e.conftest import Stack, wait_for, worker_manifest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

HOUR = 3600


@pytest.fixture
def events_queue(stack: Stack, sqs_client: SQSClient) -> str:
    """A queue the local CodePipeline delivers its action events to (as EventBridge would)."""
    url = sqs_client.create_queue(QueueName=f"cpworker-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    stack.codepipeline.events.subscribe(Subscription(queue_url=url))
    return url


def idle_for_an_hour(scenario: Any, **annotations: str) -> dict[str, Any]:
    manifest = worker_manifest(scenario, annotations=annotations)
    manifest["spec"]["polling"] = {"minIntervalSeconds": HOUR, "maxIntervalSeconds": HOUR}
    return manifest


def polled_once(stack: Stack) -> None:
    wait_for(lambda: stack.calls("PollForJobs") >= 1, what="the worker's first poll")


def ready(stack: Stack) -> dict[str, Any]:
    condition = stack.cluster.condition()
    return condition or {}


def test_an_event_wakes_an_idle_worker_at_once(stack: Stack, events_queue: str) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator(events_queue_url=events_queue)
    stack.cluster.apply(idle_for_an_hour(scenario, **{"sandbox.cpworker.io/duration": "200ms"}))
    polled_once(stack)
    wait_for(
        lambda: "events" in ready(stack).get("message", ""),
        what="the worker relying on events",
    )
    execution_id = scenario.start(stack.cp_client)
    # Its next timed poll is an hour away: only the STARTED event can have woken it.
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"
    assert ready(stack)["reason"] == "Polling"
    assert stack.calls("PutJobSuccessResult") == 1


def test_an_unreadable_queue_falls_back_to_polling_and_says_so(
    stack: Stack, moto_server: str
) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator(events_queue_url=f"{moto_server}/123456789012/no-such-queue")
    manifest = worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "200ms"})
    stack.cluster.apply(manifest)
    condition = wait_for(
        lambda: (c := ready(stack)).get("reason") == "PollingOnly" and c,
        timeout=60,
        what="Ready=True, reason PollingOnly",
    )
    assert condition["status"] == "True"
    assert "events queue cannot be read" in condition["message"]
    # The worker's own polling policy (1 s here) still runs its jobs.
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


def test_foreign_malformed_and_duplicate_events_are_harmless_and_deleted(
    stack: Stack, events_queue: str, sqs_client: SQSClient
) -> None:
    scenario = stack.cp_scenario()
    stack.start_operator(events_queue_url=events_queue)
    stack.cluster.apply(idle_for_an_hour(scenario, **{"sandbox.cpworker.io/duration": "200ms"}))
    polled_once(stack)
    started: dict[str, Any] = {
        "detail-type": "CodePipeline Action Execution State Change",
        "source": "aws.codepipeline",
        "region": REGION,
        "detail": {
            "pipeline": scenario.pipeline_name,
            "execution-id": "not-a-real-execution",
            "stage": "Build",
            "action": "Build",
            "state": "STARTED",
            "type": dict(scenario.action_type_id),
        },
    }
    foreign = {
        **started,
        "detail": {
            **started["detail"],
            "type": {**started["detail"]["type"], "provider": "SomeoneElse"},
        },
    }
    bodies = ["not json", json.dumps({"hello": "world"}), json.dumps(foreign)]
    bodies += [json.dumps(started)] * 3  # a STARTED with no job behind it, three times
    for body in bodies:
        sqs_client.send_message(QueueUrl=events_queue, MessageBody=body)

    def drained() -> bool:
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=events_queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(int(v) == 0 for v in attributes.values())

    wait_for(drained, timeout=60, what="every message acted on and deleted")
    assert stack.cluster.jobs() == []
    assert ready(stack)["status"] == "True"
    # A real job afterwards is still woken at once.
    execution_id = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, execution_id, timeout=60) == "Succeeded"


def test_an_ended_action_probes_its_job_at_once(stack: Stack, events_queue: str) -> None:
    scenario = stack.cp_scenario()
    # The periodic cancellation probe is an hour apart: only the event can stop the Job.
    stack.start_operator(
        events_queue_url=events_queue, cancel_probe_seconds=HOUR, events_cancel_probe_seconds=HOUR
    )
    stack.cluster.apply(idle_for_an_hour(scenario, **{"sandbox.cpworker.io/duration": "120s"}))
    polled_once(stack)
    execution_id = scenario.start(stack.cp_client)
    wait_for(
        lambda: any(
            j["metadata"]["annotations"].get("cpworker.io/phase") == "running"
            for j in stack.cluster.jobs()
        ),
        timeout=60,
        what="the Job running",
    )
    stack.cp_client.stop_pipeline_execution(
        pipelineName=scenario.pipeline_name,
        pipelineExecutionId=execution_id,
        abandon=True,
        reason="stopped by the test",
    )
    wait_for(
        lambda: "JobCancelled" in [e["reason"] for e in stack.cluster.events()],
        timeout=60,
        what="the Job cancelled after its action was abandoned",
    )
    wait_for(lambda: stack.cluster.jobs() == [], timeout=60, what="the Job deleted")
