"""The sandbox stack: every local stand-in on free loopback ports, and the env file for clients.

Today: moto (S3, STS, IAM, KMS, SQS) and the local CodePipeline. Further stand-ins (the local
Kubernetes API, the operator) join through `StackComponent`; see `SandboxStack.components`.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from types import TracebackType
from typing import Protocol

import boto3

from cpworker.sandbox.codepipeline import CodePipelineStandIn, Faults, StandInConfig
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    aws_environment,
    client_config,
)
from cpworker.sandbox.codepipeline.events import Subscription
from cpworker.sandbox.codepipeline.objectstore import MotoServer

DEFAULT_REGION = "us-east-1"
EVENTS_QUEUE_VARIABLE = "CPWORKER_SANDBOX_EVENTS_QUEUE_URL"


class StackComponent(Protocol):
    """A further stand-in: started after CodePipeline and moto, given their environment.

    `start` returns the variables it adds to the env file (e.g. `KUBECONFIG`).
    """

    def start(self, env: dict[str, str], directory: Path) -> dict[str, str]: ...

    def stop(self) -> None: ...


def render_env(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))


@dataclasses.dataclass
class SandboxStack:
    directory: Path
    region: str = DEFAULT_REGION
    config: StandInConfig = dataclasses.field(default_factory=StandInConfig)
    faults: Faults = dataclasses.field(default_factory=Faults)
    # ---- plug-in point: the lead adds the local Kubernetes API (engineer B's KubeStandIn,
    # ---- adapted to StackComponent) and, with `--operator`, the operator here, in start order.
    components: list[StackComponent] = dataclasses.field(default_factory=list)
    # An SQS queue (created in moto) that receives CodePipeline's action execution events.
    events_queue: str | None = None
    # Put the S3 guard (refuses expired job credentials) in front of moto for S3 clients.
    s3_guard: bool = False
    # Put action execution events on moto's default EventBridge bus, as CodePipeline does.
    eventbridge: bool = True
    moto: MotoServer | None = None
    codepipeline: CodePipelineStandIn | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def env_file(self) -> Path:
        return self.directory / "env"

    def start(self) -> SandboxStack:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.moto = MotoServer().start()
            self.codepipeline = CodePipelineStandIn(
                self.moto.url,
                region=self.region,
                config=self.config,
                faults=self.faults,
                s3_guard=self.s3_guard,
            ).start()
            self.codepipeline.events.eventbridge = self.eventbridge
            self.env = aws_environment(self.codepipeline.url, self.moto.url, self.region)
            self.env["AWS_ENDPOINT_URL_S3"] = self.codepipeline.s3_url
            if self.events_queue is not None:
                self.env[EVENTS_QUEUE_VARIABLE] = self._create_events_queue(self.events_queue)
            for component in self.components:
                self.env.update(component.start(dict(self.env), self.directory))
        except BaseException:
            self.stop()
            raise
        self.env_file.write_text(render_env(self.env))
        return self

    def _create_events_queue(self, name: str) -> str:
        assert self.moto is not None
        assert self.codepipeline is not None
        sqs = boto3.client(
            "sqs",
            endpoint_url=self.moto.url,
            region_name=self.region,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=client_config(),
        )
        queue_url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        # The policy terraform/modules/job-events writes: EventBridge may deliver to the queue
        # (`cpworker check` looks for it, as an EventBridge rule needs it in AWS).
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EventBridgeRuleDelivers",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn["Attributes"]["QueueArn"],
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        self.codepipeline.events.subscribe(Subscription(queue_url=queue_url))
        return queue_url

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        if self.codepipeline is not None:
            self.codepipeline.stop()
            self.codepipeline = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None

    def __enter__(self) -> SandboxStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
