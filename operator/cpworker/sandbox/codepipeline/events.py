"""EventBridge-shaped action execution events, delivered to SQS queues in the sandbox.

CodePipeline publishes "CodePipeline Action Execution State Change" events; an EventBridge
rule can route them to an SQS queue, and a worker that long-polls the queue learns at once that
a job is about to appear. The stand-in plays both parts: it builds the event AWS would send and
delivers its JSON as the message body to every subscribed queue (in moto). Real events can be
late, duplicated or lost, so each subscription can delay, duplicate and drop them on purpose.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DETAIL_TYPE = "CodePipeline Action Execution State Change"
# ActionRun statuses -> the event's detail.state
STATES = {
    "InProgress": "STARTED",
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
    "Abandoned": "ABANDONED",
}


@dataclasses.dataclass
class Subscription:
    """Where events go, and how unreliably (seconds, probabilities 0-1)."""

    queue_url: str
    delay: float = 0.0
    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    owners: tuple[str, ...] = ("Custom",)  # like a rule matching detail.type.owner
    # Like a rule matching detail.state: by default the Terraform job-events module's rule
    # (terraform/modules/job-events/main.tf), so that what reaches the operator's queue, and
    # what the benchmark counts, is what production delivers. None: every state.
    states: tuple[str, ...] | None = ("STARTED", "FAILED", "CANCELED", "ABANDONED")

    def __post_init__(self) -> None:
        if self.delay < 0 or not all(
            0 <= p <= 1 for p in (self.drop_probability, self.duplicate_probability)
        ):
            raise ValueError("delay must be >= 0 and probabilities between 0 and 1")


def action_event(
    *,
    account_id: str,
    region: str,
    pipeline: str,
    pipeline_arn: str,
    pipeline_version: int,
    execution_id: str,
    stage: str,
    action: str,
    action_type_id: dict[str, str],
    status: str,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.codepipeline",
        "account": account_id,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [pipeline_arn],
        "detail": {
            "pipeline": pipeline,
            "execution-id": execution_id,
            "stage": stage,
            "action": action,
            "state": STATES[status],
            "region": region,
            "type": dict(action_type_id),
            "version": float(pipeline_version),
        },
    }


Scheduler = Callable[[float, Callable[[], None]], None]  # (delay, send) -> runs send later


def _send_now(_delay: float, send: Callable[[], None]) -> None:
    """The scheduler until the stand-in installs its own (which honours the delay)."""
    send()


class EventBus:
    """Fan-out of action events to subscribed SQS queues (sent off the caller's thread)."""

    def __init__(self, sqs_endpoint: str, region: str, seed: int | None = None) -> None:
        self._endpoint = sqs_endpoint
        self._region = region
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._client: SQSClient | None = None
        # Typed loosely: the project installs no stubs for EventBridge (boto3-stubs[events]).
        self._eventbridge_client: Any = None
        # Also put every event on moto's default EventBridge bus, where rules route it (as AWS).
        self.eventbridge = False
        self.schedule: Scheduler = _send_now
        self.delivered = 0
        self.failed = 0

    def subscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.append(subscription)

    def clear(self) -> None:
        with self._lock:
            self._subscriptions.clear()

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions)

    def _client_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self._endpoint,
            "region_name": self._region,
            "aws_access_key_id": "sandbox",
            "aws_secret_access_key": "sandbox",  # not a secret: moto ignores it
            "config": Config(
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=5,
                read_timeout=10,
            ),
        }

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = boto3.client("sqs", **self._client_options())
        return self._client

    def _events(self) -> Any:
        if self._eventbridge_client is None:
            self._eventbridge_client = boto3.client("events", **self._client_options())
        return self._eventbridge_client

    def publish(self, event: dict[str, Any]) -> None:
        if self.eventbridge:
            self.schedule(0.0, self._bus_sender(event))
        owner = event["detail"]["type"]["owner"]
        body = json.dumps(event)
        state = event["detail"].get("state")
        for subscription in self.subscriptions():
            if owner not in subscription.owners:
                continue
            if subscription.states is not None and state not in subscription.states:
                continue
            with self._lock:
                if self._random.random() < subscription.drop_probability:
                    continue
                copies = 2 if self._random.random() < subscription.duplicate_probability else 1
            for _ in range(copies):
                self.schedule(subscription.delay, self._sender(subscription.queue_url, body))

    def _bus_sender(self, event: dict[str, Any]) -> Callable[[], None]:
        entry: Any = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
            "Resources": event["resources"],
            "EventBusName": "default",
        }

        def send() -> None:
            try:
                answer = self._events().put_events(Entries=[entry])
                if answer.get("FailedEntryCount"):
                    self.failed += 1
                else:
                    self.delivered += 1
            except (BotoCoreError, ClientError):
                self.failed += 1

        return send

    def _sender(self, queue_url: str, body: str) -> Callable[[], None]:
        def send() -> None:
            try:
                self._sqs().send_message(QueueUrl=queue_url, MessageBody=body)
                self.delivered += 1
            except (BotoCoreError, ClientError):
                # Like EventBridge: an undeliverable event is lost, never an error for CodePipeline.
                self.failed += 1

        return send
