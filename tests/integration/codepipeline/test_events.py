"""Action execution events (EventBridge-shaped) delivered to SQS queues in moto."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
)
from cpworker.sandbox.codepipeline.events import DETAIL_TYPE, Subscription
from cpworker.sandbox.codepipeline.scenario import Scenario

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_sqs import SQSClient

ScenarioFactory = Callable[..., Scenario]


def new_queue(sqs_client: SQSClient) -> str:
    return sqs_client.create_queue(QueueName=f"cp-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def receive(
    sqs_client: SQSClient, queue_url: str, count: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        answer = sqs_client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            events.append(json.loads(message["Body"]))
            sqs_client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


def test_started_and_succeeded_events_reach_a_queue_subscribed_to_every_state(
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    sqs_client: SQSClient,
) -> None:
    queue_url = new_queue(sqs_client)
    ruled_url = new_queue(sqs_client)  # as the job-events module's rule: no SUCCEEDED
    codepipeline.events.subscribe(Subscription(queue_url=queue_url, states=None))
    codepipeline.events.subscribe(Subscription(queue_url=ruled_url))
    scenario = cp_scenario()
    execution_id = scenario.start(cp_client)
    (started,) = receive(sqs_client, queue_url, 1)
    assert started["detail-type"] == DETAIL_TYPE
    assert started["source"] == "aws.codepipeline"
    assert started["resources"] == [
        f"arn:aws:codepipeline:us-east-1:123456789012:{scenario.pipeline_name}"
    ]
    detail = started["detail"]
    assert detail["state"] == "STARTED"
    assert detail["execution-id"] == execution_id
    assert (detail["stage"], detail["action"]) == ("Build", "Build")
    assert detail["type"] == scenario.action_type_id  # the AWS-owned source action is filtered out
    # The event is a hint that the job exists: a poll right after it finds the job.
    (job,) = scenario.poll(cp_client)
    cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp_client.put_job_success_result(jobId=job["id"])
    (finished,) = receive(sqs_client, queue_url, 1)
    assert finished["detail"]["state"] == "SUCCEEDED"
    assert [e["detail"]["state"] for e in receive(sqs_client, ruled_url, 1)] == ["STARTED"]
    assert receive(sqs_client, ruled_url, 1, timeout=1.5) == []


def test_a_failed_action_reaches_the_queue_as_the_rule_delivers_it(
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    sqs_client: SQSClient,
) -> None:
    queue_url = new_queue(sqs_client)
    codepipeline.events.subscribe(Subscription(queue_url=queue_url))
    scenario = cp_scenario()
    scenario.start(cp_client)
    (started,) = receive(sqs_client, queue_url, 1)
    assert started["detail"]["state"] == "STARTED"
    (job,) = scenario.poll(cp_client)
    cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp_client.put_job_failure_result(
        jobId=job["id"], failureDetails={"type": "JobFailed", "message": "make: Error 2"}
    )
    (failed,) = receive(sqs_client, queue_url, 1)
    assert failed["detail"]["state"] == "FAILED"


def test_unreliable_delivery_on_demand(
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    sqs_client: SQSClient,
) -> None:
    dropped, doubled = new_queue(sqs_client), new_queue(sqs_client)
    base = f"{codepipeline.url}/_sandbox/events"
    for settings in (
        {"queue_url": dropped, "drop_probability": 1},
        {"queue_url": doubled, "duplicate_probability": 1, "delay": 0.2},
    ):
        request = urllib.request.Request(base, data=json.dumps(settings).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    scenario = cp_scenario()
    scenario.start(cp_client)
    events = receive(sqs_client, doubled, 2)
    assert [e["detail"]["state"] for e in events] == ["STARTED", "STARTED"]
    assert events[0]["id"] == events[1]["id"]  # a duplicate, as EventBridge may deliver
    assert receive(sqs_client, dropped, 1, timeout=1.5) == []
    with urllib.request.urlopen(base, timeout=10) as response:
        state = json.loads(response.read())
    assert len(state["subscriptions"]) == 2
    assert state["delivered"] == 2
    request = urllib.request.Request(base, data=b'{"queue_url": "q", "delay": -1}', method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=10)


def test_events_on_the_eventbridge_bus_follow_its_rules(
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    sqs_client: SQSClient,
) -> None:
    """Like AWS: CodePipeline puts events on the default bus; a user's rule routes them to SQS."""
    queue_url = new_queue(sqs_client)
    queue_arn = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    scenario = cp_scenario()
    events: Any = boto3.client(
        "events",
        endpoint_url=codepipeline.s3_endpoint,  # moto serves EventBridge too
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    rule = f"cp-started-{uuid.uuid4().hex[:8]}"
    pattern = {
        "source": ["aws.codepipeline"],
        "detail-type": [DETAIL_TYPE],
        "detail": {
            "state": ["STARTED"],
            "type": {"owner": ["Custom"], "provider": [scenario.action_type_id["provider"]]},
        },
    }
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    try:
        request = urllib.request.Request(
            f"{codepipeline.url}/_sandbox/events", data=b'{"eventbridge": true}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["eventbridge"] is True
        execution_id = scenario.start(cp_client)
        (event,) = receive(sqs_client, queue_url, 1)
        assert event["source"] == "aws.codepipeline"
        assert event["detail"]["execution-id"] == execution_id
        assert event["detail"]["action"] == "Build"
        # Only what the rule matches arrives: no source-action or SUCCEEDED events.
        (job,) = scenario.poll(cp_client)
        cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
        cp_client.put_job_success_result(jobId=job["id"])
        assert scenario.wait(cp_client, execution_id) == "Succeeded"
        assert receive(sqs_client, queue_url, 1, timeout=1.5) == []
    finally:
        events.remove_targets(Rule=rule, Ids=["queue"])
        events.delete_rule(Name=rule)
